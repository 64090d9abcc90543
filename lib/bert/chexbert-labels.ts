// CheXbert's 14 observations, in head order, and its class encodings (stanfordmlgroup/CheXbert
// src/constants.py): heads 0..12 give 0 blank, 1 positive, 2 negative, 3 uncertain; head 13 (No Finding)
// gives 0 blank, 1 positive.

const CONDITIONS = [
  'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema', 'Consolidation',
  'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other', 'Fracture',
  'Support Devices', 'No Finding',
] as const;

export type ChexbertCondition = (typeof CONDITIONS)[number];

export const CHEXBERT_CLASSES = ['blank', 'positive', 'negative', 'uncertain'] as const;
export type ChexbertClass = (typeof CHEXBERT_CLASSES)[number];

/** the 14 observations in the order of the labeler's heads */
export function chexbertConditions(): ChexbertCondition[] {
  return [...CONDITIONS];
}

/** the classes each head scores, in head order: 4 (blank, positive, negative, uncertain), and 2 for No Finding */
export function chexbertHeadClasses(): number[] {
  return CONDITIONS.map((c) => (c === 'No Finding' ? 2 : CHEXBERT_CLASSES.length));
}
