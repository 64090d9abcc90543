export { RadgraphModel, type RadgraphSettings, type RadgraphTrace, type RadgraphAnnotateManyOptions } from './radgraph.js';
export { radgraphWords } from './words.js';
export { annotation as radgraphAnnotation, decodeNer, decodeRelations, enumerateSpans, pruneSpans } from './decode.js';
export { readModelArchive, type ModelArchive } from './archive.js';
