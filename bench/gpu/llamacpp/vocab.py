"""A stand-in tokenizer for GGUFs built from random weights: a SentencePiece-style ("llama") vocabulary of exactly
the model's vocab_size tokens, so the token embedding and output matrices keep their real shapes.

  id 0       <unk>          UNKNOWN
  id 1       <s>            CONTROL  (BOS)
  id 2       </s>           CONTROL  (EOS)
  id 3..258  <0x00>..<0xFF> BYTE     (llama.cpp's SPM tokenizer falls back to these for any text)
  id 259     <|endoftext|>  CONTROL  (llama.cpp's vocabulary loader looks this token up by text when general.name
                                      contains "phi-3"/"phi3" (llama-vocab.cpp, per-model token attributes) and
                                      fails with "unordered_map::at" without it; harmless for every other model)
  id 260..   t260, t261 ... NORMAL   (fillers; they match no text made of other characters)

The tokenizer only lives in the GGUF's metadata (host memory); it does not change any tensor.
"""

N_FIXED = 3 + 256 + 1


def synthetic_vocab(n_vocab):
    n_vocab = int(n_vocab)
    if n_vocab < N_FIXED:
        raise ValueError(f"vocab_size {n_vocab} < {N_FIXED}: too small for <unk>, <s>, </s>, 256 byte tokens and <|endoftext|>")
    # gguf.TokenType: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6
    tokens = [b"<unk>", b"<s>", b"</s>"]
    scores = [0.0, 0.0, 0.0]
    types = [2, 3, 3]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>".encode())
        scores.append(0.0)
        types.append(6)
    tokens.append(b"<|endoftext|>")
    scores.append(0.0)
    types.append(3)
    for i in range(N_FIXED, n_vocab):
        tokens.append(f"t{i}".encode())
        scores.append(-float(i))
        types.append(1)
    return tokens, scores, types


def write_vocab(writer, n_vocab):
    """Writes the tokenizer keys with a gguf.GGUFWriter (as the converter's _set_vocab_sentencepiece does)."""
    tokens, scores, types = synthetic_vocab(n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    return len(tokens)
