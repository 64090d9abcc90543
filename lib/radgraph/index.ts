export { RadgraphModel, RADGRAPH_MAX_WORDS, RADGRAPH_MAX_KEPT_SPANS, radgraphTooLong, type RadgraphSettings, type RadgraphTrace, type RadgraphAnnotateManyOptions } from './radgraph.js';
export { radgraphWords } from './words.js';
export { annotation as radgraphAnnotation, decodeNer, decodeRelations, enumerateSpans, keptSpanCount, pruneSpans } from './decode.js';
export { readModelArchive, type ModelArchive } from './archive.js';
