"""Magic numbers of CLIP, named after where they come from.

Every value here is OpenAI CLIP's (github.com/openai/CLIP, ViT-B/32), unless the name says otherwise.
"""

# clip/clip.py `_transform`: Normalize(mean, std) of the OpenAI dataset statistics.
OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)

# ViT-B/32 input resolution (model.visual.input_resolution).
IMAGE_SIZE = 224

# clip.tokenize: context_length=77; ids of "<|startoftext|>" and "<|endoftext|>" in the BPE vocab.
CONTEXT_LENGTH = 77
SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
SOT_ID = 49406
EOT_ID = 49407
VOCAB_SIZE = 49408

# clip/model.py: logit_scale is learned and clamped at ln(100); trained CLIP sits at the clamp.
LOGIT_SCALE = 100.0

# ViT-B/32 joint embedding width (text_projection / visual.proj output).
EMBED_DIM = 512

# OpenAI's BPE merges file, as shipped in the `clip` repository (bpe_simple_vocab_16e6.txt.gz).
BPE_VOCAB_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
BPE_VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
BPE_VOCAB_BYTES = 1_356_917

# Pillow's own default guard is ~89.5 Mpx (warning) / 2x that (error). We refuse earlier and
# before decoding, so a decompression bomb never allocates: 50 Mpx covers a 8192x6144 photo.
MAX_IMAGE_PIXELS = 50_000_000
