-- Similarity search through an HNSW index: each document's own text finds it first.
CREATE TABLE hnsw_docs (
    id        int PRIMARY KEY,
    body      text NOT NULL,
    embedding vector(256)
);
INSERT INTO hnsw_docs (id, body) VALUES
  (1,  'PostgreSQL is a powerful, open source object-relational database system.'),
  (2,  'pgvector adds vector similarity search to Postgres.'),
  (3,  'HNSW builds a multilayer graph for approximate nearest neighbour search.'),
  (4,  'The Eiffel Tower is in Paris, the capital of France.'),
  (5,  'Photosynthesis converts light energy into chemical energy in plants.'),
  (6,  'A binary search tree keeps its keys in sorted order.'),
  (7,  'Mount Everest is the highest mountain above sea level.'),
  (8,  'The mitochondria is the powerhouse of the cell.'),
  (9,  'Rust guarantees memory safety without a garbage collector.'),
  (10, 'Coffee beans are the seeds of the Coffea plant.'),
  (11, 'The Pacific is the largest and deepest ocean on Earth.'),
  (12, 'Jazz originated in New Orleans in the early twentieth century.'),
  (13, 'Zürich, 東京, Москва — naïve café 🐘'),
  (14, 'fn main() { println!("hello"); }'),
  (15, 'SELECT count(*) FROM pg_class;'),
  (16, 'Water boils at 100 degrees Celsius at sea level.'),
  (17, 'The speed of light is about 300,000 kilometres per second.'),
  (18, 'Chess is played on a board of 64 squares.'),
  (19, 'Honey never spoils if it is stored properly.'),
  (20, 'Octopuses have three hearts and blue blood.');
-- Embeddings filled in one batch call.
UPDATE hnsw_docs d SET embedding = b.embedding
  FROM qwen3_embed_batch((SELECT array_agg(body ORDER BY id) FROM hnsw_docs)) b
 WHERE b.ord = d.id;
SELECT count(*) AS rows, count(embedding) AS embedded FROM hnsw_docs;

-- EXPLAIN without the folded query vector (its digits are not the point here).
CREATE FUNCTION plan_of(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        RETURN NEXT regexp_replace(line, '''\[[^]]*\]''::vector', '<query vector>');
    END LOOP;
END $$;

CREATE INDEX hnsw_docs_embedding ON hnsw_docs USING hnsw (embedding vector_cosine_ops);
ANALYZE hnsw_docs;
SET enable_seqscan = off;

-- The plan uses the index.
SELECT plan_of($q$SELECT id FROM hnsw_docs ORDER BY embedding <=> qwen3_embed_document('Honey never spoils if it is stored properly.') LIMIT 3$q$);

-- Row k's own text finds row k first (LIMIT 3: k leads, three distinct rows), for several k.
SELECT k, top3[1] = k AS k_first, cardinality(top3) AS n, top3[2] <> top3[3] AND top3[2] <> k AS distinct_rest
  FROM (SELECT k, (SELECT array_agg(id) FROM (
                       SELECT id FROM hnsw_docs
                        ORDER BY embedding <=> qwen3_embed_document((SELECT body FROM hnsw_docs WHERE id = k))
                        LIMIT 3) top) AS top3
          FROM (VALUES (1), (4), (7), (13), (14), (19)) AS t(k)) r
 ORDER BY k;
-- Every row.
SELECT k,
       (SELECT id FROM hnsw_docs
         ORDER BY embedding <=> qwen3_embed_document((SELECT body FROM hnsw_docs WHERE id = k))
         LIMIT 1) = k AS found_first
  FROM generate_series(1, 20) AS k
 ORDER BY k;
-- ... and the distance to itself is zero.
SELECT round((embedding <=> qwen3_embed_document(body))::numeric, 6) AS self_distance
  FROM hnsw_docs WHERE id = 2;

-- Index scan and exact scan agree on the top 3.
CREATE TEMP TABLE index_top3 AS
SELECT k, (SELECT array_agg(id) FROM (SELECT id FROM hnsw_docs
             ORDER BY embedding <=> qwen3_embed_document((SELECT body FROM hnsw_docs WHERE id = k)) LIMIT 3) x) AS top3
  FROM generate_series(1, 20) AS k;
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT plan_of($q$SELECT id FROM hnsw_docs ORDER BY embedding <=> qwen3_embed_document('x') LIMIT 3$q$);
SELECT count(*) AS compared,
       count(*) FILTER (WHERE i.top3 = (SELECT array_agg(id) FROM (SELECT id FROM hnsw_docs
             ORDER BY embedding <=> qwen3_embed_document((SELECT body FROM hnsw_docs WHERE id = i.k)) LIMIT 3) x)) AS agree
  FROM index_top3 i;
RESET enable_indexscan;
SET enable_seqscan = off;

-- Queries carry the retrieval instruction; with the query form the index is used the same way.
SELECT plan_of($q$SELECT id FROM hnsw_docs ORDER BY embedding <=> qwen3_embed_query('capital of France') LIMIT 3$q$);
SELECT count(*) AS results FROM (
    SELECT id FROM hnsw_docs ORDER BY embedding <=> qwen3_embed_query('capital of France') LIMIT 3) r;
-- With a random-weight model a query's instruction outweighs its few words, so query-to-document
-- ranking means nothing here. Query-to-query search does: a column of query-form vectors (one
-- batch call with the default task) with its own index, searched with qwen3_embed_query.
ALTER TABLE hnsw_docs ADD COLUMN qembedding vector(256);
UPDATE hnsw_docs d SET qembedding = b.embedding
  FROM qwen3_embed_batch((SELECT array_agg(body ORDER BY id) FROM hnsw_docs), qwen3_embed_default_task()) b
 WHERE b.ord = d.id;
SELECT count(*) FILTER (WHERE (qembedding <=> qwen3_embed_query(body)) < 1e-6) AS batch_equals_query_function
  FROM hnsw_docs;
CREATE INDEX hnsw_docs_qembedding ON hnsw_docs USING hnsw (qembedding vector_cosine_ops);
SELECT plan_of($q$SELECT id FROM hnsw_docs ORDER BY qembedding <=> qwen3_embed_query('capital of France') LIMIT 3$q$);
SELECT count(*) AS searched,
       count(*) FILTER (WHERE (SELECT id FROM hnsw_docs
                                ORDER BY qembedding <=> qwen3_embed_query((SELECT body FROM hnsw_docs WHERE id = k))
                                LIMIT 1) = k) AS found_first
  FROM generate_series(1, 20) AS k;

-- The query vector is computed once, at plan time: the immutable call is folded into a constant.
SELECT count(*) FILTER (WHERE p LIKE '%qwen3_embed%') AS calls_left_in_plan,
       count(*) FILTER (WHERE p LIKE '%<query vector>%') AS constant_vectors
  FROM plan_of($q$SELECT id FROM hnsw_docs ORDER BY embedding <=> qwen3_embed_document('x') LIMIT 1$q$) p;

-- Rows added after the index exists are found too.
INSERT INTO hnsw_docs VALUES (21, 'A late addition about lighthouses.', qwen3_embed_document('A late addition about lighthouses.'));
SELECT id FROM hnsw_docs ORDER BY embedding <=> qwen3_embed_document('A late addition about lighthouses.') LIMIT 1;
RESET enable_seqscan;
DROP TABLE hnsw_docs;
DROP FUNCTION plan_of(text);
