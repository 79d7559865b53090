//! The reranking SQL functions: the reranker of `qwen3_embed.reranker_path` reads a query with
//! each document and gives P(yes), the probability that the document meets the query.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

use crate::api::flat_texts;
use crate::errors::raise_with;
use crate::host;
use crate::text::{opt, DbText};

/// Each document's score for `query` (NULL for a NULL document, or for all when the query is
/// NULL): one row per document in input order (`ord` from 1), or with `top_n` the best `top_n`
/// by score, highest first (ties in input order, NULL scores last).
#[pg_extern(immutable, parallel_safe)]
fn qwen3_rerank(
    query: Option<DbText>,
    documents: Option<Array<DbText>>,
    instruct: default!(Option<DbText>, "NULL"),
    top_n: default!(Option<i32>, "NULL"),
) -> TableIterator<'static, (name!(ord, i32), name!(score, Option<f32>))> {
    if let Some(n) = top_n.filter(|&n| n < 1) {
        raise_with(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("qwen3_rerank: top_n must be at least 1, got {n}"),
            "Pass NULL (the default) for every document in input order.",
        );
    }
    let Some(documents) = documents else {
        return TableIterator::new(Vec::new());
    };
    let docs = flat_texts(documents, "qwen3_rerank: documents");
    let mut scores: Vec<Option<f32>> = vec![None; docs.len()];
    if let Some(query) = query {
        let present: Vec<&str> = docs.iter().flatten().map(String::as_str).collect();
        if !present.is_empty() {
            let mut got = host::rerank(query.as_str(), &present, opt(&instruct)).into_iter();
            for (s, d) in scores.iter_mut().zip(&docs) {
                if d.is_some() {
                    *s = got.next();
                }
            }
        }
    }
    let mut rows: Vec<(i32, Option<f32>)> = scores.into_iter().enumerate().map(|(i, s)| (i as i32 + 1, s)).collect();
    if let Some(n) = top_n {
        // Highest first, NULL last, ties in input order (the sort is stable).
        rows.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
        rows.truncate(n as usize);
    }
    TableIterator::new(rows)
}

/// One document's score for `query`: P(yes) in [0, 1]; NULL when either is NULL.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_rerank_score(
    query: Option<DbText>,
    document: Option<DbText>,
    instruct: default!(Option<DbText>, "NULL"),
) -> Option<f32> {
    host::rerank(query?.as_str(), &[document?.as_str()], opt(&instruct)).pop()
}
