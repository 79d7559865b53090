-- halfvec (16-bit floats): half the storage, the same search, distances within 1e-3.
CREATE TABLE half_docs (
    id   int PRIMARY KEY,
    body text NOT NULL,
    emb  halfvec(256),
    emb_small halfvec(128)
);
INSERT INTO half_docs (id, body)
SELECT i, format('Document number %s is about %s.', i,
                 (ARRAY['databases', 'oceans', 'music', 'chemistry', 'chess', 'coffee', 'rivers', 'compilers'])[1 + i % 8])
  FROM generate_series(1, 16) AS i;
UPDATE half_docs SET emb = qwen3_embed(body)::halfvec(256),
                     emb_small = qwen3_embed(body, NULL, 128)::halfvec(128);
-- Assignment from vector works without a cast too.
INSERT INTO half_docs VALUES (17, 'assigned without a cast', qwen3_embed('assigned without a cast'), qwen3_embed('assigned without a cast', NULL, 128));

SELECT count(*) AS rows,
       max(vector_dims(emb::vector)) AS dims,
       max(vector_dims(emb_small::vector)) AS small_dims,
       count(*) FILTER (WHERE (emb <=> qwen3_embed(body)::halfvec) < 1e-3) AS close_in_halfvec,
       count(*) FILTER (WHERE (emb::vector <=> qwen3_embed(body)) < 1e-3) AS close_in_vector,
       count(*) FILTER (WHERE (emb_small::vector <=> qwen3_embed(body, NULL, 128)) < 1e-3) AS small_close,
       count(*) FILTER (WHERE abs(l2_norm(emb) - 1) < 1e-3) AS unit_norm
  FROM half_docs;

-- An HNSW index over halfvec; each row's text finds it first.
CREATE INDEX half_docs_emb ON half_docs USING hnsw (emb halfvec_cosine_ops);
SET enable_seqscan = off;
SELECT count(*) AS searched,
       count(*) FILTER (WHERE (SELECT h.id FROM half_docs h
                                ORDER BY h.emb <=> qwen3_embed_document(d.body)::halfvec(256) LIMIT 1) = d.id) AS found_first
  FROM half_docs d;
EXPLAIN (COSTS OFF) SELECT id FROM half_docs ORDER BY emb <=> '[1,2,3]'::halfvec LIMIT 1;
-- An expression index: no stored column at all, the immutable function is the index key.
CREATE INDEX half_docs_expr ON half_docs USING hnsw ((qwen3_embed(body)::halfvec(256)) halfvec_cosine_ops);
EXPLAIN (COSTS OFF) SELECT id FROM half_docs ORDER BY qwen3_embed(body)::halfvec(256) <=> '[1,2,3]'::halfvec LIMIT 1;
SELECT id FROM half_docs ORDER BY qwen3_embed(body)::halfvec(256) <=> qwen3_embed('Document number 5 is about coffee.')::halfvec(256) LIMIT 1;
RESET enable_seqscan;
DROP TABLE half_docs;
