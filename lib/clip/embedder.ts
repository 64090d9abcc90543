// What retrieval needs from a CLIP model: L2-normalized image and text embeddings in one space.
//
// The BiomedCLIP-CXR model (lib/clip/) implements it; the index, search and retrieval evaluation
// (lib/retrieval/) take any Embedder, so they are tested on their own with a deterministic one.

export interface EmbedOptions {
  /** rejects with ABORTED */
  signal?: AbortSignal;
}

export interface Embedder {
  /** floats per embedding (BiomedCLIP-CXR: 512) */
  readonly dim: number;
  /** identifies the weights the vectors came from (sha256 hex of the model file(s)); an index records it */
  readonly modelId: string;
  /** one L2-normalized Float32Array of `dim` floats per image (encoded PNG / JPEG / DICOM bytes) */
  embedImages(images: readonly Uint8Array[], options?: EmbedOptions): Promise<Float32Array[]>;
  /** one L2-normalized Float32Array of `dim` floats per text */
  embedTexts(texts: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>;
  /** frees what the model holds (native memory); the command line calls it when done */
  dispose?(): Promise<void>;
}
