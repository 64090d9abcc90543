// Retrieval over CLIP embeddings: the index file, exact search, the build, export and evaluation.
export { RetrievalIndex, writeIndexFile, type IndexContents, type OpenIndexOptions } from './index-file.js';
export { INDEX_LIMITS, INDEX_MAGIC, INDEX_VERSION, type EntryKind } from './format.js';
export { search, searchVectors, checkSameModel, MAX_K, DEFAULT_K, type SearchHit, type SearchOptions, type KindFilter, type Query } from './search.js';
export { buildIndex, DEFAULT_BUILD_BATCH, type BuildIndexOptions, type BuildIndexResult } from './build.js';
export { exportJsonl } from './export.js';
export { retrievalMetrics, retrievalRanks, RECALL_AT, type RetrievalMetrics, type DirectionMetrics, type RetrievalRanks } from './metrics.js';
export { evalRetrieval, type EvalRetrievalOptions, type EvalRetrievalResult } from './eval.js';
export { openEmbedder } from './open-embedder.js';
