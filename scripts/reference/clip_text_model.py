"""The text tower's Hub files for a tiny release: vocab.txt (a small WordPiece vocabulary laid out like
PubMedBERT's: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then single characters, their ## forms, radiology
words and pieces) and config.json (HF BertConfig)."""
import json
import os
import string

WORDS = '''no pleural effusion effusions pneumothorax cardiomegaly edema consolidation atelectasis opacity opacities
lung lungs heart size normal clear left right small large mild moderate severe there is are of the a an photo this
chest x ray radiograph findings impression acute cardiopulmonary process stable bilateral fracture support devices
tube line in place with and without seen evidence unchanged compared prior study silhouette mediastinal contours
within limits enlarged lesion nodule mass pneumonia fibrosis hernia emphysema thickening infiltration'''.split()
PIECES = '''pneum ##onia ##thorax effus ##ion ##ions atel ##ectasis cardio ##megaly ##s ##es ##al ##ed ##ing ##ly
##ity ##ities opac ##ation consolid ##ular medi ##astin bi ##lateral'''.split()


def vocabulary():
    special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    chars = list(string.punctuation) + list(string.digits) + list(string.ascii_lowercase)
    out = []
    for t in special + chars + ['##' + c for c in string.digits + string.ascii_lowercase] + WORDS + PIECES:
        if t not in out:
            out.append(t)
    return out


def write_text_model(folder, text):
    """writes folder/vocab.txt and folder/config.json for a text tower of shape `text`; returns the vocabulary"""
    os.makedirs(folder, exist_ok=True)
    vocab = vocabulary()
    with open(os.path.join(folder, 'vocab.txt'), 'w') as f:
        f.write(''.join(t + '\n' for t in vocab))
    cfg = {'architectures': ['BertForMaskedLM'], 'model_type': 'bert', 'attention_probs_dropout_prob': 0.1,
           'hidden_act': 'gelu', 'hidden_dropout_prob': 0.1, 'hidden_size': text['dim'], 'initializer_range': 0.02,
           'intermediate_size': text['ff'], 'layer_norm_eps': 1e-12, 'max_position_embeddings': text['positions'],
           'num_attention_heads': text['heads'], 'num_hidden_layers': text['layers'], 'pad_token_id': 0,
           'type_vocab_size': 2, 'vocab_size': len(vocab)}
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
        f.write('\n')
    return vocab
