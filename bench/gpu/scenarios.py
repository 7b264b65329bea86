"""Scenario list for measure_transformers.py.

Every scenario is a plain dict (it travels to the child process as JSON). Keys:
  id          unique, readable name
  model       catalog file stem (data/catalog/<model>.json)
  mode        generate | forward | train
  dtype       fp16 | bf16 | fp32 (for train: the dtype the weights are built in: bf16 or fp32 under amp-bf16)
  batch       batch size
  prompt      prompt tokens (inference)
  new_tokens  tokens to generate (generate)
  attn_requested  None (transformers' default) or "eager"
  train, precision, optimizer, seq, grad_ckpt, lora_r, lora_targets, steps   (train mode)
  tier        0 = the study's own scenario, 1 = core coverage, 2 = extras (run last, dropped first)
  est_gib     a rough, deliberately generous upper bound of the process's GPU memory, used only by the driver
              to keep the sum of concurrently running scenarios below the GPU's memory. It is NOT a model of
              memory and nothing downstream may use it.

The estimate needs a handful of sizes from each config.json; they are read from the catalog at import time.
"""
import functools
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOG = os.path.normpath(os.path.join(HERE, "..", "..", "data", "catalog"))

TL = "TinyLlama__TinyLlama-1.1B-Chat-v1.0"
PHI2 = "microsoft__phi-2"
MIS = "mistralai__Mistral-7B-v0.1"
ZEP = "HuggingFaceH4__zephyr-7b-beta"
SOLAR = "upstage__SOLAR-10.7B-Instruct-v1.0"
XGLM = "facebook__xglm-4.5B"
YI = "01-ai__Yi-6B"
YOURI = "rinna__youri-7b"
Q05 = "Qwen__Qwen2.5-0.5B"
Q7 = "Qwen__Qwen2.5-7B-Instruct"
G2 = "google__gemma-2-2b"
GPT2M = "openai-community__gpt2-medium"
PY = "EleutherAI__pythia-1.4b"
OPT = "facebook__opt-1.3b"
BLOOM = "bigscience__bloom-560m"
FAL = "tiiuae__falcon-7b"
PHI3 = "microsoft__Phi-3-mini-4k-instruct"
G3 = "google__gemma-3-1b-it"
G1 = "google__gemma-2b"
Q3 = "Qwen__Qwen3-8B"
L31 = "meta-llama__Llama-3.1-8B"
MOE = "Qwen__Qwen3-30B-A3B"  # measured cut to MOE_LAYERS decoder layers (config_override), 128 experts kept
MOE_LAYERS = 4
# issue 15's MoE / MLA / long-context models (the MoE ones measured cut to a few decoder layers: the mechanisms are
# per layer; config_override below)
MIXTRAL = "mistralai__Mixtral-8x7B-v0.1"
DSV2L = "deepseek-ai__DeepSeek-V2-Lite"
DSV3 = "deepseek-ai__DeepSeek-V3"
GPTOSS = "openai__gpt-oss-20b"
PHI35 = "microsoft__Phi-3.5-mini-instruct"
L32 = "meta-llama__Llama-3.2-1B-Instruct"
Q306 = "Qwen__Qwen3-0.6B"
Q15 = "Qwen__Qwen2.5-1.5B"
# issue 15's FP8 checkpoints (block-scaled, as the hub stores them; measure_transformers.prepare_checkpoint writes
# them from random bf16 weights), cut like their bf16 twins
MOE8 = "Qwen__Qwen3-30B-A3B-FP8"
Q32F8 = "Qwen__Qwen3-32B-FP8"
MOE235F8 = "Qwen__Qwen3-235B-A22B-FP8"
# issue 15's last held-out set adds dense models the harness never ran
OLMO7 = "allenai__OLMo-2-1124-7B"
PHI4M = "microsoft__Phi-4-mini-instruct"
Q34 = "Qwen__Qwen3-4B"
# issue 15's vision-language model with cross-attention layers (loaded whole, as MllamaForConditionalGeneration)
MLL = "meta-llama__Llama-3.2-11B-Vision-Instruct"
CUTS = {MOE: {"num_hidden_layers": MOE_LAYERS}, MOE8: {"num_hidden_layers": MOE_LAYERS}, Q32F8: {"num_hidden_layers": 4},
        MOE235F8: {"num_hidden_layers": 2}, MIXTRAL: {"num_hidden_layers": 2},
        DSV2L: {"num_hidden_layers": 6}, DSV3: {"num_hidden_layers": 2, "first_k_dense_replace": 1},
        GPTOSS: {"num_hidden_layers": 4, "layer_types": ["sliding_attention", "full_attention"] * 2}}

STUDY_MODELS = [TL, PHI2, MIS, ZEP, SOLAR, XGLM, YI, YOURI]
OTHER_MODELS = [Q05, Q7, G2, GPT2M, PY, OPT, BLOOM, FAL, PHI3, Q3, L31]

# Parameter counts as PyTorch counts them (bench/data/transformers_params.jsonl), for the scheduling estimate.
PARAMS = {
    TL: 1100048384, PHI2: 2779683840, MIS: 7241732096, ZEP: 7241732096, SOLAR: 10731524096,
    XGLM: 4552511488, YI: 6061035520, YOURI: 6738415616, Q05: 494032768, Q7: 7615616512,
    G2: 2614341888, GPT2M: 354823168, PY: 1414647808, OPT: 1315758080, BLOOM: 559214592,
    FAL: 6921720704, PHI3: 3821079552, Q3: 8190735360, L31: 8030261248,
    G3: 999885952, G1: 2506172416,
    # Qwen3-30B-A3B cut to 4 layers: 2 x 151936 x 2048 (embedding, untied head) + 4 x ~623 M (128 experts of
    # 3 x 2048 x 768, attention, router): a generous round figure for scheduling only
    MOE: 3200000000,
    # llmem params of the cuts in CUTS (issue 15), and Phi-3.5-mini whole
    MIXTRAL: 3164688384, DSV2L: 3424678912, DSV3: 13944134656, GPTOSS: 4451017664, PHI35: 3821079552,
    # llmem params (issue 15's second held-out set)
    L32: 1235814400, Q306: 596049920, Q15: 1543714304,
    # the FP8 cuts, counted as if bf16 (an upper bound of what they load: scheduling only)
    MOE8: 3200000000, Q32F8: 2000000000, MOE235F8: 6000000000,
    # llmem params (issue 15's last held-out set)
    OLMO7: 7298617344, PHI4M: 3836021760, Q34: 4022468096,
    # llmem params (Llama-3.2-11B-Vision, vision tower included)
    MLL: 10670220835,
}

# LoRA target module names per model_type (attention projections).
LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3_moe": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mixtral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "deepseek_v2": ["q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"],
    "deepseek_v3": ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"],
    "gpt_oss": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi3": ["qkv_proj", "o_proj"],
}

DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
GIB = 1024 ** 3


def load_config(model):
    with open(os.path.join(CATALOG, model + ".json")) as f:
        return json.load(f)


def dims(model, override=None):
    c = load_config(model)
    c.update(override or {})
    if isinstance(c.get("text_config"), dict):  # a vision-language model: the decoder's fields
        c = {**c, **{k: v for k, v in c["text_config"].items() if k != "model_type"}}

    def first(*keys, default=None):
        for k in keys:
            if c.get(k) is not None:
                return c[k]
        return default

    h = first("hidden_size", "n_embd", "d_model", "n_embed")
    heads = first("num_attention_heads", "n_head", "attention_heads")
    layers = first("num_hidden_layers", "n_layer", "num_layers")
    kvh = first("num_key_value_heads", default=heads)
    if c.get("model_type") == "falcon" and c.get("multi_query") and not c.get("new_decoder_architecture"):
        kvh = 1
    hd = first("head_dim", default=h // heads)
    inter = first("intermediate_size", "ffn_dim", "n_inner", default=4 * h)
    maxpos = first("max_position_embeddings", "n_positions", default=2048)
    return {"model_type": c.get("model_type"), "h": h, "heads": heads, "layers": layers, "kvh": kvh, "hd": hd,
            "inter": inter, "vocab": c["vocab_size"], "maxpos": maxpos}


def max_positions(model):
    return dims(model)["maxpos"]


def estimate_gib(sc):
    """Generous upper bound of a scenario's process memory, for scheduling only (see module doc)."""
    d = dims(sc["model"], sc.get("config_override"))
    P = sc.get("sched_params") or PARAMS[sc["model"]]
    L, h, inter, V = d["layers"], d["h"], d["inter"], d["vocab"]
    eager = sc.get("attn_requested") == "eager" or d["model_type"] == "gemma2"
    if sc["mode"] in ("generate", "forward"):
        b = DTYPE_BYTES[sc["dtype"]]
        B, p = sc["batch"], sc["prompt"]
        T = p + (sc.get("new_tokens") or 0)
        tokens = B * p
        weights = P * b
        kv = 2 * L * d["kvh"] * d["hd"] * B * T * b if sc["mode"] == "generate" else 0
        act = tokens * (3 * inter + 10 * h) * b
        logits = tokens * V * b * 2
        if d["model_type"] == "gemma2":
            logits *= 2  # soft-capping makes more full-size copies
        scores = B * d["heads"] * p * p * (b + 4) if eager else 0
        total = weights + kv + act + logits + scores
        return round(total * 1.15 / GIB + 1.5, 1)
    # training
    prec = sc["precision"]
    wb = 2 if prec == "bf16" else 4
    B, S = sc["batch"], sc["seq"]
    tokens = B * S
    if sc["train"] == "full":
        opt = sc["optimizer"]
        opt_states = 2 * wb if opt.startswith("adamw") else (wb if opt == "sgd-momentum" else (wb // 2 if opt == "adafactor" else 0))
        temps = 2 * wb if opt in ("adamw-default", "adamw-foreach") else wb
        states = P * (wb + wb + opt_states + temps)  # weights, grads, optimizer states, step temporaries
    else:
        states = P * wb * 1.1
    if sc.get("grad_ckpt"):
        act = tokens * h * 2 * L * 2 + tokens * (16 * h + 5 * inter) * 2
    else:
        act = tokens * (16 * h + 5 * inter) * 2 * L
        if eager:
            act += B * d["heads"] * S * S * 8 * L
    if eager:
        act += B * d["heads"] * S * S * 8
    logits = tokens * V * 14
    if sc.get("hf_trainer"):
        logits += tokens * V * 8  # accelerate's fp32 copy of the logits under autocast
    if d["model_type"] == "gemma2":
        logits *= 1.5
    total = states + act + logits
    return round(total * 1.15 / GIB + 2.0, 1)


def _gen(model, dtype, batch, prompt, new, attn=None, tier=1):
    sid = f"gen-{model}-{dtype}-b{batch}-p{prompt}-n{new}" + (f"-{attn}" if attn else "")
    return {"id": sid, "model": model, "mode": "generate", "dtype": dtype, "batch": batch, "prompt": prompt,
            "new_tokens": new, "attn_requested": attn, "tier": tier}


def _fwd(model, dtype, batch, prompt, attn=None, tier=1):
    sid = f"fwd-{model}-{dtype}-b{batch}-p{prompt}" + (f"-{attn}" if attn else "")
    return {"id": sid, "model": model, "mode": "forward", "dtype": dtype, "batch": batch, "prompt": prompt,
            "new_tokens": None, "attn_requested": attn, "tier": tier}


def _train(model, precision, batch, seq, ckpt, optimizer="adamw", train="full", lora_r=None, tier=1, targets=None):
    dtype = "bf16" if precision == "bf16" else "fp32"
    default_targets = train == "lora" and targets is None
    if default_targets:
        targets = LORA_TARGETS[dims(model)["model_type"]]
    sid = (f"train-{train}-{model}-{precision}-{optimizer}-b{batch}-s{seq}" + ("-ckpt" if ckpt else "")
           + (f"-r{lora_r}" if lora_r else "") + ("" if default_targets or train != "lora" else "-" + "+".join(targets)))
    return {"id": sid, "model": model, "mode": "train", "dtype": dtype, "batch": batch, "prompt": None,
            "new_tokens": None, "attn_requested": None, "train": train, "precision": precision,
            "optimizer": optimizer, "seq": seq, "grad_ckpt": bool(ckpt), "lora_r": lora_r,
            "lora_targets": targets, "steps": 2, "tier": tier}


def build_scenarios():
    s = []
    # --- the study's own scenario: fp16, batch 1, "Hello, world!" (~6 tokens), generation length 20 ---
    for m in STUDY_MODELS:
        s.append(_gen(m, "fp16", 1, 6, 14, tier=0))
    for m in OTHER_MODELS:
        s.append(_gen(m, "fp16", 1, 6, 14, tier=1))

    # --- generation, 128 new tokens ---
    g = [
        (TL, "fp16", 1, 128), (TL, "fp16", 4, 1024), (TL, "fp16", 16, 1024), (TL, "fp32", 1, 8), (TL, "bf16", 16, 128),
        (L31, "bf16", 1, 128), (L31, "bf16", 4, 4096), (L31, "bf16", 16, 1024), (L31, "bf16", 1, 8192),
        (MIS, "fp16", 1, 4096), (MIS, "fp16", 1, 8192), (MIS, "fp16", 16, 128),
        (Q05, "bf16", 16, 4096), (Q05, "bf16", 1, 8192), (Q05, "fp32", 4, 1024), (Q05, "fp16", 1, 8),
        (Q7, "bf16", 4, 1024), (Q7, "bf16", 1, 8192),
        (G2, "bf16", 1, 128), (G2, "bf16", 4, 4096), (G2, "bf16", 1, 8064),
        (GPT2M, "fp32", 16, 128), (GPT2M, "fp16", 4, 896), (GPT2M, "fp16", 1, 8),
        (PY, "fp16", 4, 1024), (PY, "fp32", 1, 128),
        (OPT, "fp16", 16, 1024), (OPT, "fp32", 1, 128),
        (BLOOM, "fp32", 4, 1024), (BLOOM, "fp16", 16, 128),
        (FAL, "bf16", 4, 1024), (FAL, "bf16", 1, 128),
        (PHI3, "bf16", 1, 128), (PHI3, "bf16", 4, 1024), (PHI3, "bf16", 1, 3968),
        (Q3, "bf16", 4, 4096), (Q3, "bf16", 1, 8192),
        (YI, "fp16", 4, 1024), (SOLAR, "fp16", 4, 1024), (XGLM, "fp16", 4, 1024),
        (PHI2, "fp16", 4, 1024), (PHI2, "fp32", 1, 128),
    ]
    g_extra = {(TL, "bf16", 16, 128), (Q05, "fp16", 1, 8), (GPT2M, "fp16", 1, 8), (PHI3, "bf16", 1, 128),
               (FAL, "bf16", 1, 128), (OPT, "fp32", 1, 128), (PY, "fp32", 1, 128)}
    for m, dt, b, p in g:
        s.append(_gen(m, dt, b, p, 128, tier=2 if (m, dt, b, p) in g_extra else 1))

    # --- single forward passes, no KV cache ---
    f = [
        (TL, "fp16", 1, 2048), (TL, "fp16", 16, 1024), (TL, "fp32", 4, 1024),
        (L31, "bf16", 1, 8192), (L31, "bf16", 4, 4096), (L31, "bf16", 16, 1024),
        (Q05, "bf16", 16, 4096), (Q05, "bf16", 1, 8192), (Q05, "fp32", 4, 2048),
        (Q7, "bf16", 1, 8192), (MIS, "fp16", 4, 8192),
        (G2, "bf16", 1, 8192), (G2, "bf16", 4, 4096),
        (GPT2M, "fp32", 16, 1024), (GPT2M, "fp16", 4, 1024),
        (PY, "fp16", 16, 2048), (PY, "fp32", 1, 2048),
        (OPT, "fp16", 4, 2048),
        (BLOOM, "fp16", 16, 1024), (BLOOM, "fp32", 4, 2048),
        (FAL, "bf16", 4, 2048),
        (PHI3, "bf16", 1, 4096), (PHI3, "bf16", 16, 1024),
        (Q3, "bf16", 4, 4096), (XGLM, "fp16", 1, 2048), (YI, "fp16", 4, 4096), (SOLAR, "fp16", 1, 4096),
        (PHI2, "fp16", 4, 2048),
    ]
    f_extra = {(PHI3, "bf16", 16, 1024), (Q3, "bf16", 4, 4096), (YI, "fp16", 4, 4096), (Q05, "bf16", 1, 8192),
               (PY, "fp32", 1, 2048)}
    for m, dt, b, p in f:
        s.append(_fwd(m, dt, b, p, tier=2 if (m, dt, b, p) in f_extra else 1))

    # --- eager attention (materialises the scores), paired with default-attention cases above ---
    s += [
        _fwd(TL, "fp16", 4, 1024, attn="eager"),
        _gen(TL, "fp16", 1, 1024, 128, attn="eager"),
        _fwd(L31, "bf16", 1, 4096, attn="eager"),
        _fwd(Q05, "bf16", 4, 2048, attn="eager"),
        _gen(MIS, "fp16", 1, 4096, 128, attn="eager"),
        _fwd(GPT2M, "fp16", 4, 1024, attn="eager"),
        _fwd(PHI2, "fp16", 4, 2048, attn="eager"),
        _fwd(G2, "bf16", 4, 4096, attn="eager"),
    ]
    # sdpa counterparts of the eager cases that have none above
    s += [_gen(TL, "fp16", 1, 1024, 128), _fwd(L31, "bf16", 1, 4096), _fwd(Q05, "bf16", 4, 2048)]

    # --- full training, AdamW, bf16 and amp-bf16, with and without gradient checkpointing ---
    for m in [TL, Q05, GPT2M, PY, G2, PHI2]:
        big = 1024 if m == GPT2M else 2048
        s += [
            _train(m, "bf16", 1, 512, False),
            _train(m, "bf16", 4, big, True),
            _train(m, "amp-bf16", 1, 512, False),
            _train(m, "amp-bf16", 4, big, True),
            _train(m, "amp-bf16", 1, big, False),
            _train(m, "bf16", 1 if m == G2 else 4, big, False),
            _train(m, "bf16", 1, 512, True, tier=2),
        ]
        if m not in (G2, PHI2):
            s.append(_train(m, "amp-bf16", 4, 512, False, tier=2))
    # SGD (no optimizer state)
    s += [
        _train(TL, "bf16", 1, 512, False, optimizer="sgd"),
        _train(Q05, "amp-bf16", 4, 2048, True, optimizer="sgd"),
        _train(PY, "bf16", 1, 2048, False, optimizer="sgd"),
    ]
    # LoRA r=16 on the attention projections, bf16 base, seq 1024
    for m in [TL, Q05, MIS, L31]:
        s += [
            _train(m, "bf16", 1, 1024, False, train="lora", lora_r=16),
            _train(m, "bf16", 4, 1024, False, train="lora", lora_r=16),
            _train(m, "bf16", 4, 1024, True, train="lora", lora_r=16),
            _train(m, "bf16", 1, 1024, True, train="lora", lora_r=16, tier=2),
        ]
    s += [
        _train(TL, "amp-bf16", 4, 1024, False, train="lora", lora_r=16, tier=2),
        _train(PHI2, "bf16", 1, 1024, False, train="lora", lora_r=16, tier=2),
    ]

    return _checked(s)


def build_holdout():
    """Held-out scenarios (tier 3): shapes and model/mode combinations that are not in build_scenarios(), measured
    once, after the estimator's mechanisms were set, to show how it does on runs it was not developed against
    (bench/data/transformers_holdout.jsonl). They are not used to develop the estimator."""
    s = [
        _gen(Q3, "bf16", 2, 2048, 64, tier=3),
        _gen(G2, "bf16", 8, 512, 64, tier=3),
        _gen(TL, "fp32", 2, 1536, 64, tier=3),
        _gen(MIS, "bf16", 8, 1024, 64, tier=3),
        _gen(FAL, "bf16", 2, 2048, 32, tier=3),
        _gen(Q7, "fp16", 2, 1024, 64, tier=3),
        _fwd(PHI3, "bf16", 2, 4096, tier=3),
        _fwd(PY, "bf16", 8, 1024, tier=3),
        _fwd(OPT, "fp16", 8, 2048, tier=3),
        _fwd(BLOOM, "bf16", 8, 1024, tier=3),
        _fwd(YI, "bf16", 2, 2048, tier=3),
        _train(Q05, "bf16", 2, 1024, False, tier=3),
        _train(PY, "bf16", 2, 1024, False, tier=3),
        _train(PHI2, "bf16", 2, 1024, False, optimizer="sgd", tier=3),
        _train(G2, "amp-bf16", 2, 1024, True, tier=3),
        _train(GPT2M, "amp-bf16", 2, 1024, False, tier=3),
        _train(TL, "bf16", 8, 1024, True, tier=3),
        _train(L31, "bf16", 2, 2048, True, train="lora", lora_r=16, tier=3),
        _train(Q7, "bf16", 1, 2048, False, train="lora", lora_r=8, tier=3),
        _train(PHI3, "amp-bf16", 1, 1024, True, tier=3),
    ]
    main_ids = {sc["id"] for sc in build_scenarios()}
    for sc in s:
        if sc["id"] in main_ids:
            raise ValueError(f"held-out scenario {sc['id']} is also in the main set")
    return _checked(s)


def build_holdout2():
    """The second held-out set (tier 4), chosen after the LoRA op-by-op replay (commit eec42c2) and measured once,
    for the same purpose as build_holdout(): shapes and model/mode pairs in neither earlier set; LoRA with other
    ranks, sequence lengths, checkpointing, autocast, MLP targets and Qwen3's q/k norms; full training and
    inference in new shapes (bench/data/transformers_holdout2.jsonl)."""
    all7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    s = [
        _gen(TL, "bf16", 8, 2000, 32, tier=4),
        _gen(Q05, "fp16", 32, 512, 64, tier=4),
        _gen(L31, "bf16", 2, 8000, 16, tier=4),
        _gen(GPT2M, "fp32", 8, 512, 32, tier=4),
        _gen(PY, "bf16", 4, 2000, 32, tier=4),
        _fwd(MIS, "bf16", 4, 4096, tier=4),
        _fwd(Q3, "bf16", 4, 2048, tier=4),
        _fwd(G2, "fp32", 2, 2048, tier=4),
        _train(Q05, "bf16", 8, 512, False, train="lora", lora_r=32, tier=4),
        _train(TL, "bf16", 2, 2048, False, train="lora", lora_r=8, tier=4),
        _train(MIS, "bf16", 2, 2048, True, train="lora", lora_r=16, tier=4),
        _train(Q3, "bf16", 1, 2048, False, train="lora", lora_r=16, tier=4),
        _train(TL, "amp-bf16", 2, 1024, False, train="lora", lora_r=16, tier=4),
        _train(Q05, "bf16", 4, 1024, False, train="lora", lora_r=16, tier=4, targets=all7),
        _train(L31, "bf16", 1, 4096, True, train="lora", lora_r=64, tier=4),
        _train(Q05, "bf16", 8, 512, False, tier=4),
        _train(TL, "amp-bf16", 2, 1024, True, tier=4),
        _train(G2, "bf16", 2, 1024, False, tier=4),
        _train(PY, "amp-bf16", 2, 1024, False, tier=4),
        _train(GPT2M, "bf16", 8, 512, True, tier=4),
        _train(PHI2, "amp-bf16", 1, 1024, False, optimizer="sgd", tier=4),
        _train(Q05, "amp-bf16", 2, 2048, False, tier=4),
    ]
    return _held_out(s, build_scenarios, build_holdout)


def build_holdout3():
    """The third held-out set (tier 5), chosen after the training replay was reworked (LoRA op by op, autocast
    weight copies per tensor, Gemma's norms, checkpointed layers as no_grad op sequences, LoRA on any linear) and
    measured once at 70205ea, blind, like the others (bench/data/transformers_holdout3.jsonl)."""
    all7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    s = [
        _gen(MIS, "bf16", 4, 2048, 32, tier=5),
        _gen(G2, "fp16", 2, 2048, 32, tier=5),
        _fwd(TL, "fp32", 8, 512, tier=5),
        _fwd(PHI2, "bf16", 8, 1024, tier=5),
        _gen(Q3, "bf16", 8, 1024, 16, tier=5),
        _fwd(GPT2M, "bf16", 16, 512, tier=5),
        _train(L31, "bf16", 2, 1024, False, train="lora", lora_r=32, tier=5),
        _train(MIS, "bf16", 1, 4096, False, train="lora", lora_r=8, tier=5),
        _train(Q05, "bf16", 2, 4096, True, train="lora", lora_r=16, tier=5),
        _train(TL, "bf16", 4, 2048, True, train="lora", lora_r=64, tier=5),
        _train(Q3, "bf16", 2, 1024, True, train="lora", lora_r=8, tier=5),
        _train(Q7, "bf16", 2, 1024, False, train="lora", lora_r=16, tier=5, targets=all7),
        _train(PHI2, "bf16", 2, 512, False, train="lora", lora_r=16, tier=5),
        _train(G2, "bf16", 1, 1024, True, tier=5),
        _train(G2, "amp-bf16", 1, 1024, False, tier=5),
        _train(PHI2, "bf16", 2, 1024, True, tier=5),
        _train(PY, "bf16", 4, 1024, True, tier=5),
        _train(TL, "amp-bf16", 4, 1024, True, tier=5),
        _train(Q05, "bf16", 2, 4096, True, tier=5),
        _train(GPT2M, "amp-bf16", 2, 1024, True, tier=5),
        _train(PY, "amp-bf16", 1, 1024, True, optimizer="sgd", tier=5),
        _train(Q05, "amp-bf16", 4, 1024, False, tier=5),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2)


def build_holdout4():
    """The fourth held-out set (tier 6): the sliding-window mask path (K/V expanded per head, the mask's additive
    copy per layer) was added after the third set showed it missing (Mistral LoRA at seq = window); these runs
    check it on shapes past a window that no earlier set has (Mistral, Phi-3, Gemma-2), measured once at 7abd512
    (bench/data/transformers_holdout4.jsonl)."""
    s = [
        _train(MIS, "bf16", 2, 4096, True, train="lora", lora_r=16, tier=6),
        _train(MIS, "bf16", 1, 8192, True, train="lora", lora_r=8, tier=6),
        _train(MIS, "bf16", 1, 4096, True, tier=6),
        _train(PHI3, "bf16", 1, 2048, True, tier=6),
        _train(G2, "bf16", 1, 4096, True, tier=6),
        _gen(MIS, "bf16", 2, 6000, 16, tier=6),
        _fwd(MIS, "bf16", 1, 16384, tier=6),
        _fwd(PHI3, "bf16", 4, 3000, tier=6),
        _fwd(G2, "bf16", 2, 6000, tier=6),
        _gen(PHI3, "fp16", 2, 2500, 16, tier=6),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3)


def _ft(model, precision, batch, seq, ckpt, optimizer="adamw-default", train="full", lora_r=None, tier=8,
        targets=None, hf=False, ga=1, alloc=None):
    """A fine-tuning scenario of the 'as people run it' sets (issue 14): the optimizer user code gets, the HF Trainer
    (hf=True: TrainingArguments defaults, bf16=True, its optimizer choice; ga = gradient_accumulation_steps), the
    allocator's expandable segments (alloc), and the MoE cut to MOE_LAYERS layers."""
    sc = _train(model, precision, batch, seq, ckpt, optimizer=optimizer, train=train, lora_r=lora_r, tier=tier,
                targets=targets)
    if hf:
        sc["hf_trainer"] = True
        sc["optimizer"] = "hf-default"
        sc["grad_accum"] = ga
        sc["id"] = sc["id"].replace("train-", "hftrainer-", 1).replace("-adamw-default", "") + (f"-ga{ga}" if ga > 1 else "")
    if alloc:
        sc["alloc_conf"] = alloc
        sc["id"] += "-expseg" if alloc == "expandable_segments:True" else "-" + alloc
    if model == MOE:
        sc["config_override"] = {"num_hidden_layers": MOE_LAYERS}
        sc["id"] = sc["id"].replace(MOE, f"{MOE}-L{MOE_LAYERS}")
    return sc


def build_finetune():
    """Fine-tuning as people run it (tier 8, issue 14): torch.optim.AdamW(params) (foreach on CUDA), fused, the
    for-loop, SGD with momentum, transformers' Adafactor, the HF Trainer with its defaults (bf16=True over fp32
    weights; with gradient accumulation and checkpointing), LoRA, the allocator's expandable segments, and an MoE
    (Qwen3-30B-A3B cut to 4 layers). Split from build_finetune_holdout() before the engine modelled any of it."""
    s = []
    for m in [TL, Q05, PY, G2, PHI2]:
        s += [_ft(m, "bf16", 1, 512, False, optimizer="adamw-default"),
              _ft(m, "bf16", 1, 512, False, optimizer="adamw-fused"),
              _ft(m, "bf16", 1, 512, False, optimizer="sgd-momentum"),
              _ft(m, "bf16", 1, 512, False, optimizer="adafactor")]
    s += [
        _ft(TL, "bf16", 1, 512, False, optimizer="adamw-forloop"),
        _ft(PY, "bf16", 1, 512, False, optimizer="adamw-forloop"),
        _ft(MIS, "bf16", 1, 512, True, optimizer="adamw-default"),
        _ft(MIS, "bf16", 1, 512, True, optimizer="adamw-fused"),
        _ft(TL, "amp-bf16", 2, 1024, False, optimizer="adamw-default"),
        _ft(Q05, "amp-bf16", 2, 1024, True, optimizer="adamw-default"),
        _ft(PY, "amp-bf16", 1, 1024, False, optimizer="adamw-fused"),
        _ft(TL, "bf16", 2, 1024, False, optimizer="adamw-default", train="lora", lora_r=16),
        _ft(Q05, "bf16", 4, 1024, False, optimizer="adamw-default", train="lora", lora_r=16),
        _ft(L31, "bf16", 1, 1024, False, optimizer="adamw-default", train="lora", lora_r=16),
        _ft(L31, "bf16", 1, 1024, False, optimizer="adamw-fused", train="lora", lora_r=16),
        _ft(MOE, "bf16", 1, 512, False, optimizer="adamw-default"),
        _ft(MOE, "bf16", 1, 1024, False, optimizer="adamw-default", train="lora", lora_r=16),
        # the HF Trainer: fp32 weights under bf16=True (autocast), as from_pretrained(dtype=float32) gives
        _ft(TL, "amp-bf16", 4, 512, False, hf=True),
        _ft(Q05, "amp-bf16", 4, 1024, False, hf=True),
        _ft(PY, "amp-bf16", 2, 1024, False, hf=True, ga=4),
        _ft(G2, "amp-bf16", 1, 1024, True, hf=True),
        _ft(TL, "amp-bf16", 2, 1024, True, hf=True, ga=4),
        _ft(Q05, "bf16", 2, 1024, False, hf=True),
        _ft(TL, "bf16", 2, 1024, False, train="lora", lora_r=16, hf=True),
        _ft(L31, "bf16", 1, 1024, False, train="lora", lora_r=16, hf=True, ga=2),
        # expandable segments, each beside the same run with the default allocator
        _ft(TL, "bf16", 4, 1024, False, optimizer="adamw-default"),
        _ft(TL, "bf16", 4, 1024, False, optimizer="adamw-default", alloc="expandable_segments:True"),
        _ft(L31, "bf16", 2, 2048, False, optimizer="adamw-default", train="lora", lora_r=16),
        _ft(L31, "bf16", 2, 2048, False, optimizer="adamw-default", train="lora", lora_r=16,
            alloc="expandable_segments:True"),
        _ft(PY, "bf16", 4, 1024, True, optimizer="adamw-fused"),
        _ft(PY, "bf16", 4, 1024, True, optimizer="adamw-fused", alloc="expandable_segments:True"),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3, build_holdout4,
                     build_gemma_lora)


def build_finetune_holdout():
    """Held-out for build_finetune() (tier 9): chosen at the same time, measured in the same device command, and
    compared with llmem only after the engine's optimizer/Trainer/allocator modelling was done."""
    s = [
        _ft(Q7, "bf16", 2, 1024, False, optimizer="adamw-default", train="lora", lora_r=16, tier=9),
        _ft(PHI3, "bf16", 1, 1024, True, optimizer="adamw-default", tier=9),
        _ft(G3, "bf16", 2, 1024, False, optimizer="sgd-momentum", tier=9),
        _ft(PY, "bf16", 4, 1024, False, optimizer="adafactor", tier=9),
        _ft(Q05, "amp-bf16", 8, 512, False, optimizer="adamw-default", tier=9),
        _ft(MIS, "bf16", 1, 2048, False, optimizer="adamw-fused", train="lora", lora_r=16, tier=9),
        _ft(GPT2M, "bf16", 4, 1024, False, optimizer="adamw-default", tier=9),
        _ft(G2, "bf16", 2, 1024, True, optimizer="adamw-fused", tier=9),
        _ft(TL, "bf16", 2, 2048, True, optimizer="adamw-forloop", tier=9),
        _ft(Q3, "bf16", 1, 2048, False, optimizer="adamw-default", train="lora", lora_r=16, tier=9),
        _ft(MOE, "bf16", 2, 512, True, optimizer="adamw-fused", tier=9),
        _ft(TL, "amp-bf16", 2, 1024, False, hf=True, ga=2, tier=9),
        _ft(PHI2, "amp-bf16", 1, 1024, True, hf=True, tier=9),
        _ft(Q05, "bf16", 4, 1024, False, train="lora", lora_r=16, hf=True, tier=9),
        _ft(G2, "amp-bf16", 1, 1024, True, hf=True, ga=2, tier=9),
        _ft(Q05, "amp-bf16", 2, 2048, True, hf=True, ga=4, tier=9),
        _ft(MIS, "bf16", 1, 4096, True, optimizer="adamw-default", train="lora", lora_r=16, tier=9,
            alloc="expandable_segments:True"),
        _ft(G2, "bf16", 1, 1024, False, optimizer="adamw-default", tier=9, alloc="expandable_segments:True"),
        _ft(TL, "bf16", 1, 512, False, optimizer="adamw-fused", tier=9, alloc="expandable_segments:True"),
        _ft(PY, "amp-bf16", 2, 1024, False, hf=True, tier=9, alloc="expandable_segments:True"),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3, build_holdout4,
                     build_gemma_lora, build_finetune)


def build_finetune_all():
    """Both fine-tuning sets, run in one device command (the held-out records are kept in their own file)."""
    return build_finetune() + build_finetune_holdout()


def build_gemma_lora():
    """LoRA on the Gemma family (tier 7): no earlier set has a Gemma LoRA run, so the LoRA replay of Gemma's layers
    (its extra norms; Gemma-3's q/k norms) was never measured. bf16 base, r 16 on the attention projections, AdamW;
    Gemma-2 2B, Gemma-3 1B and Gemma 1 2B, with and without gradient checkpointing
    (bench/data/transformers_gemma_lora.jsonl)."""
    s = [
        _train(G2, "bf16", 1, 1024, False, train="lora", lora_r=16, tier=7),
        _train(G2, "bf16", 2, 2048, False, train="lora", lora_r=16, tier=7),
        _train(G2, "bf16", 1, 2048, True, train="lora", lora_r=16, tier=7),
        _train(G2, "bf16", 4, 1024, True, train="lora", lora_r=16, tier=7),
        _train(G3, "bf16", 1, 1024, False, train="lora", lora_r=16, tier=7),
        _train(G3, "bf16", 4, 2048, True, train="lora", lora_r=16, tier=7),
        _train(G1, "bf16", 1, 1024, False, train="lora", lora_r=16, tier=7),
        _train(G1, "bf16", 2, 2048, True, train="lora", lora_r=16, tier=7),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3, build_holdout4)


def _i15(sc, cache=None, load=None):
    """An issue-15 scenario: the MoE cuts of CUTS, a requested cache implementation (generate's
    cache_implementation: static, offloaded; None = what generate picks) and the loading path (load=
    "from_pretrained": a random-weight checkpoint saved by save_pretrained before the scenario starts, loaded with
    from_pretrained(dtype=..., device_map="cuda") as users load a model; default from_config on the GPU)."""
    m = sc["model"]
    if m in CUTS:
        sc["config_override"] = dict(CUTS[m])
        sc["id"] = sc["id"].replace(m, f"{m}-L{CUTS[m]['num_hidden_layers']}")
    if cache:
        sc["cache_impl"] = cache
        sc["id"] += f"-{cache}"
    if load:
        sc["load"] = load
        sc["id"] += "-pretrained"
    return sc


def build_issue15():
    """Issue 15 (tier 10): MoE inference (Qwen3-MoE, Mixtral, DeepSeek-V2-Lite MLA, DeepSeek-V3, gpt-oss) and LoRA
    on MoE, Gemma-3 text, static and offloaded caches, long prefills of MHA (Phi-3.5-mini) and GQA models, a batch-8
    prefill with a 152k vocabulary, from_pretrained beside from_config. Split from build_issue15_holdout() before
    any of it was measured or modelled."""
    s = [
        _i15(_gen(MOE, "bf16", 1, 512, 64, tier=10)),
        _i15(_gen(MOE, "bf16", 8, 1024, 32, tier=10)),
        _i15(_fwd(MOE, "bf16", 1, 8192, tier=10)),
        _i15(_gen(MIXTRAL, "bf16", 1, 2048, 64, tier=10)),
        _i15(_fwd(MIXTRAL, "bf16", 4, 2048, tier=10)),
        _i15(_gen(DSV2L, "bf16", 1, 1024, 64, tier=10)),
        _i15(_fwd(DSV2L, "bf16", 1, 8192, tier=10)),
        _i15(_gen(GPTOSS, "bf16", 2, 2048, 32, tier=10)),
        _i15(_fwd(DSV3, "bf16", 1, 4096, tier=10)),
        _i15(_train(MIXTRAL, "bf16", 1, 1024, False, optimizer="adamw-default", train="lora", lora_r=16, tier=10)),
        _i15(_train(DSV2L, "bf16", 2, 1024, False, optimizer="adamw-default", train="lora", lora_r=16, tier=10)),
        _i15(_gen(G3, "bf16", 1, 8192, 64, tier=10)),
        _i15(_fwd(G3, "bf16", 4, 4096, tier=10)),
        _i15(_gen(TL, "fp16", 4, 1024, 128, tier=10), cache="static"),
        _i15(_gen(L31, "bf16", 1, 4096, 64, tier=10), cache="static"),
        _i15(_gen(G2, "bf16", 1, 4096, 64, tier=10), cache="static"),
        _i15(_gen(L31, "bf16", 1, 8192, 32, tier=10), cache="offloaded"),
        _i15(_fwd(PHI35, "bf16", 1, 16384, tier=10)),
        _i15(_gen(PHI35, "bf16", 1, 8192, 16, tier=10)),
        _i15(_fwd(L31, "bf16", 1, 32768, tier=10)),
        _i15(_fwd(Q7, "bf16", 8, 2048, tier=10)),
        _i15(_gen(TL, "bf16", 1, 1024, 64, tier=10), load="from_pretrained"),
        _i15(_gen(MOE, "bf16", 1, 512, 64, tier=10), load="from_pretrained"),
        _i15(_gen(G3, "bf16", 1, 2048, 64, tier=10), load="from_pretrained"),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3, build_holdout4,
                     build_gemma_lora, build_finetune, build_finetune_holdout)


def build_issue15_holdout():
    """Held-out for build_issue15() (tier 11): chosen with it, measured in the same device commands, compared with
    llmem only after the modelling the main set leads to is done."""
    s = [
        _i15(_gen(MOE, "bf16", 4, 2048, 16, tier=11)),
        _i15(_fwd(MIXTRAL, "bf16", 1, 8192, tier=11)),
        _i15(_gen(DSV2L, "bf16", 4, 2048, 32, tier=11)),
        _i15(_fwd(GPTOSS, "bf16", 1, 8192, tier=11)),
        _i15(_gen(DSV3, "bf16", 1, 1024, 32, tier=11)),
        _i15(_train(MOE, "bf16", 2, 1024, False, optimizer="adamw-default", train="lora", lora_r=16, tier=11)),
        _i15(_train(GPTOSS, "bf16", 1, 2048, False, optimizer="adamw-default", train="lora", lora_r=16, tier=11)),
        _i15(_gen(G3, "bf16", 4, 2048, 128, tier=11)),
        _i15(_gen(Q05, "bf16", 8, 512, 128, tier=11), cache="static"),
        _i15(_gen(G3, "bf16", 2, 4096, 32, tier=11), cache="static"),
        _i15(_gen(Q7, "bf16", 1, 4096, 64, tier=11), cache="offloaded"),
        _i15(_fwd(YOURI, "fp16", 2, 4096, tier=11)),
        _i15(_fwd(PHI35, "bf16", 1, 32768, tier=11)),
        _i15(_gen(L31, "bf16", 1, 16384, 16, tier=11)),
        _i15(_gen(Q05, "bf16", 1, 2048, 64, tier=11), load="from_pretrained"),
        _i15(_fwd(MOE, "bf16", 2, 2048, tier=11), load="from_pretrained"),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3, build_holdout4,
                     build_gemma_lora, build_finetune, build_finetune_holdout, build_issue15)


def build_issue15_holdout2():
    """Second held-out set for issue 15 (tier 12), written before the sixth session's modelling of what the first
    held-out set missed (generate's compiled decode under a static cache, gpt-oss LoRA, MoE from_pretrained) and
    measured in the same device command as the traces that modelling reads; compared with llmem only after it."""
    s = [
        _i15(_gen(L32, "bf16", 4, 2048, 64, tier=12), cache="static"),
        _i15(_gen(Q306, "bf16", 2, 4096, 32, tier=12), cache="static"),
        _i15(_gen(MIS, "bf16", 1, 2048, 128, tier=12), cache="static"),
        _i15(_gen(G3, "bf16", 1, 1024, 64, tier=12), cache="static"),
        _i15(_gen(PHI35, "bf16", 1, 4096, 32, tier=12), cache="static"),
        _i15(_gen(Q15, "bf16", 16, 256, 64, tier=12), cache="static"),
        _i15(_train(GPTOSS, "bf16", 2, 1024, False, optimizer="adamw-default", train="lora", lora_r=16, tier=12)),
        _i15(_train(GPTOSS, "bf16", 1, 4096, False, optimizer="adamw-default", train="lora", lora_r=8, tier=12)),
        _i15(_gen(MIXTRAL, "bf16", 1, 1024, 32, tier=12), load="from_pretrained"),
        _i15(_fwd(DSV2L, "bf16", 1, 4096, tier=12), load="from_pretrained"),
        _i15(_gen(MOE, "bf16", 4, 1024, 16, tier=12), load="from_pretrained"),
        _i15(_gen(DSV2L, "bf16", 2, 4096, 32, tier=12)),
        _i15(_fwd(MOE, "bf16", 4, 4096, tier=12)),
        _i15(_gen(GPTOSS, "bf16", 1, 4096, 64, tier=12)),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3, build_holdout4,
                     build_gemma_lora, build_finetune, build_finetune_holdout, build_issue15, build_issue15_holdout)


# DeepSeek-V3's FP8 cut keeps 64 of its 256 routed experts (8 groups of 8; top-4 groups, top-8 experts as before):
# the whole MoE layer is 11.3 B parameters, whose CPU-side random init and save would take most of a device command
DSV3_F8_CUT = {"num_hidden_layers": 2, "first_k_dense_replace": 1, "n_routed_experts": 64}


def _f8(sc):
    """An issue-15 FP8 scenario: the model's hub FP8 checkpoint format (quantization_config fp8, 128x128 blocks),
    written before GO from random bf16 weights, loaded with from_pretrained as users load it."""
    if sc["model"] == DSV3:
        sc["config_override"] = dict(DSV3_F8_CUT)
        sc["sched_params"] = 5_300_000_000  # 1 dense + 1 MoE layer of 64 experts, embedding and head, as if bf16
        sc["id"] = sc["id"].replace(DSV3, f"{DSV3}-L2-E64-fp8")
        sc["load"] = "from_pretrained"
        sc["id"] += "-pretrained"
        return sc
    return _i15(sc, load="from_pretrained")


def build_issue15_fp8():
    """Issue 15, FP8 checkpoints (tier 13): dense Qwen3-32B-FP8, the Qwen3-MoE FP8 experts and DeepSeek-V3 (MLA, FP8
    shared and routed experts) loaded as stored and run: what transformers 5.17's FineGrainedFP8 quantizer keeps
    and what its FP8 linears and experts allocate per call. Chosen with build_issue15_fp8_holdout() before either
    was measured; this set is the one the modelling reads."""
    s = [
        _f8(_gen(MOE8, "bf16", 1, 512, 64, tier=13)),
        _f8(_fwd(MOE8, "bf16", 2, 2048, tier=13)),
        _f8(_gen(Q32F8, "bf16", 1, 1024, 32, tier=13)),
        _f8(_fwd(Q32F8, "bf16", 2, 2048, tier=13)),
        _f8(_fwd(DSV3, "bf16", 1, 2048, tier=13)),
        _f8(_gen(DSV3, "bf16", 2, 512, 32, tier=13)),
    ]
    return _held_out(s, build_issue15, build_issue15_holdout, build_issue15_holdout2)


def build_issue15_fp8_holdout():
    """Held out from build_issue15_fp8() (tier 14): compared with llmem only after the FP8 modelling is done."""
    s = [
        _f8(_gen(MOE8, "bf16", 4, 1024, 16, tier=14)),
        _f8(_fwd(Q32F8, "bf16", 1, 4096, tier=14)),
        _f8(_gen(DSV3, "bf16", 1, 1024, 16, tier=14)),
        _f8(_gen(MOE235F8, "bf16", 1, 512, 32, tier=14)),
        _f8(_fwd(MOE235F8, "bf16", 2, 1024, tier=14)),
    ]
    return _held_out(s, build_issue15, build_issue15_holdout, build_issue15_holdout2, build_issue15_fp8)


def _f8d(sc):
    """The FP8 scenario loaded with FineGrainedFP8Config(dequantize=True): the weights dequantised to bf16 as they
    load (what transformers does by itself below compute capability 8.9, e.g. on an A100, and the way to run these
    checkpoints without the `kernels` package). llmem: --fp8-dequantize."""
    sc = _f8(sc)
    sc["quant_options"] = {"dequantize": True}
    sc["id"] += "-dequant"
    return sc


def build_issue15_fp8_dequant():
    """Issue 15, FP8 checkpoints dequantised on load (tier 15): the runs the FP8 sets could not make on the GPU
    machine (their forward needs the `kernels` package). Chosen with build_issue15_fp8_dequant_holdout() before either
    was measured; the modelling reads this set."""
    s = [
        _f8d(_gen(MOE8, "bf16", 1, 512, 64, tier=15)),
        _f8d(_fwd(MOE8, "bf16", 2, 2048, tier=15)),
        _f8d(_gen(Q32F8, "bf16", 1, 1024, 32, tier=15)),
        _f8d(_fwd(DSV3, "bf16", 1, 2048, tier=15)),
        _f8d(_gen(DSV3, "bf16", 2, 512, 32, tier=15)),
    ]
    return _held_out(s, build_issue15, build_issue15_holdout, build_issue15_holdout2, build_issue15_fp8,
                     build_issue15_fp8_holdout)


def build_issue15_fp8_dequant_holdout():
    """Held out from build_issue15_fp8_dequant() (tier 16): compared with llmem only after its modelling."""
    s = [
        _f8d(_gen(MOE8, "bf16", 4, 1024, 16, tier=16)),
        _f8d(_fwd(Q32F8, "bf16", 1, 4096, tier=16)),
        _f8d(_gen(DSV3, "bf16", 1, 1024, 16, tier=16)),
        _f8d(_gen(MOE235F8, "bf16", 1, 512, 32, tier=16)),
    ]
    return _held_out(s, build_issue15, build_issue15_holdout, build_issue15_holdout2, build_issue15_fp8,
                     build_issue15_fp8_holdout, build_issue15_fp8_dequant)


def _deeper(sc, layers, params):
    """The scenario with its model cut to `layers` decoder layers instead of CUTS' (`params`: its parameter count, for
    scheduling)."""
    cut = CUTS[sc["model"]]["num_hidden_layers"]
    sc["config_override"] = dict(sc["config_override"], num_hidden_layers=layers)
    sc["id"] = sc["id"].replace(f"-L{cut}-", f"-L{layers}-")
    sc["sched_params"] = params
    return sc


def build_issue15_fp8_deep():
    """Issue 15, eleventh session (tier 17): Qwen3-30B-A3B-FP8 cut to 12 layers instead of 4, loaded dequantised and
    kept in FP8 (its forward fails without the `kernels` package; the load is measured). Checks at three times the
    depth the replay of the copy threads running ahead of a dequantising loader and the per-layer segments it
    predicts (commit d940d6f, modelled on the 4-layer traces): llmem's figures were written down before the run."""
    s = [
        _deeper(_f8d(_gen(MOE8, "bf16", 1, 512, 16, tier=17)), 12, 8_100_000_000),
        _deeper(_f8(_gen(MOE8, "bf16", 1, 512, 16, tier=17)), 12, 8_100_000_000),
    ]
    return _held_out(s, build_issue15_fp8, build_issue15_fp8_holdout, build_issue15_fp8_dequant,
                     build_issue15_fp8_dequant_holdout)


def build_issue15_final():
    """Issue 15's last held-out set (tier 18), chosen in the twelfth session (2026-12-06) with the code frozen at the
    commit that measures it: none of it was measured before, and llmem is compared with it once, at that commit,
    with no change between. It spans the issue: five MoE families (generate, forward, from_pretrained, LoRA), MLA,
    long prefills of MHA and GQA models (8k-16k), Gemma-2/3 sliding layers, static and offloaded caches, a batch
    prefill with a 152k vocabulary, FP8 checkpoints dequantised as they load, and three dense models the harness
    never ran (OLMo-2, Phi-4-mini, Qwen3-4B)."""
    s = [
        _i15(_gen(MOE, "bf16", 2, 4096, 32, tier=18)),
        _i15(_fwd(MIXTRAL, "bf16", 2, 4096, tier=18)),
        _i15(_gen(MIXTRAL, "bf16", 4, 512, 64, tier=18), load="from_pretrained"),
        _i15(_fwd(DSV2L, "bf16", 2, 2048, tier=18)),
        _i15(_gen(DSV2L, "bf16", 1, 8192, 16, tier=18)),
        _i15(_gen(GPTOSS, "bf16", 4, 1024, 32, tier=18)),
        _i15(_fwd(GPTOSS, "bf16", 2, 4096, tier=18), load="from_pretrained"),
        _i15(_fwd(DSV3, "bf16", 2, 1024, tier=18)),
        _i15(_train(MOE, "bf16", 1, 2048, False, optimizer="adamw-default", train="lora", lora_r=16, tier=18)),
        _i15(_train(DSV2L, "bf16", 1, 2048, False, optimizer="adamw-default", train="lora", lora_r=8, tier=18)),
        _i15(_fwd(Q3, "bf16", 1, 16384, tier=18)),
        _i15(_gen(PHI35, "bf16", 2, 8192, 16, tier=18)),
        _i15(_gen(G2, "bf16", 2, 2048, 64, tier=18), cache="static"),
        _i15(_gen(G3, "bf16", 1, 16384, 32, tier=18)),
        _i15(_gen(L31, "bf16", 2, 8192, 32, tier=18), cache="offloaded"),
        _i15(_gen(Q3, "bf16", 1, 2048, 128, tier=18), cache="static"),
        _i15(_fwd(Q7, "bf16", 4, 8192, tier=18)),
        _i15(_gen(OLMO7, "bf16", 2, 2048, 64, tier=18)),
        _i15(_fwd(PHI4M, "bf16", 1, 16384, tier=18)),
        _i15(_gen(Q34, "bf16", 4, 4096, 32, tier=18), load="from_pretrained"),
        _f8d(_gen(Q32F8, "bf16", 2, 2048, 32, tier=18)),
        _f8d(_fwd(MOE8, "bf16", 1, 4096, tier=18)),
    ]
    return _held_out(s, build_scenarios, build_holdout, build_holdout2, build_holdout3, build_holdout4,
                     build_gemma_lora, build_finetune, build_finetune_holdout, build_issue15, build_issue15_holdout,
                     build_issue15_holdout2, build_issue15_fp8, build_issue15_fp8_holdout, build_issue15_fp8_dequant,
                     build_issue15_fp8_dequant_holdout, build_issue15_fp8_deep)


def build_issue15_final_check():
    """After set 11 (tier 19, not held out): its one miss, Qwen3-4B generate from_pretrained, whose public config.json
    sets use_cache false (the checkpoint saved from it generated with no KV cache), run again with use_cache true in
    the saved config, as the hub's generation config leaves the cache on: checks that the miss was the cache alone."""
    sc = _i15(_gen(Q34, "bf16", 4, 4096, 32, tier=19), load="from_pretrained")
    sc["config_override"] = {"use_cache": True}
    sc["id"] += "-usecache"
    return _held_out([sc], build_issue15_final)


def _mllama_cut(text_layers, cross):
    """Llama-3.2-11B-Vision with its text decoder cut to `text_layers` layers, `cross` of them cross-attention
    (the vision tower whole): a config_override replaces the whole text_config, as llmem validate does."""
    t = dict(load_config(MLL)["text_config"])
    t["num_hidden_layers"] = text_layers
    t["cross_attention_layers"] = cross
    return {"text_config": t}


def build_issue15_mllama():
    """Issue 15, thirteenth session (tier 20): Llama-3.2-11B-Vision (mllama) generating text, loaded as users load
    it for that (MllamaForConditionalGeneration, vision tower resident), measured for the first time: the family,
    its count (10,670,220,835) and the text-only forward that skips the 8 cross-attention layers were written
    before any run, and llmem's figures for these scenarios are committed before the device command."""
    s = []
    for sc in (_gen(MLL, "bf16", 1, 4096, 32, tier=20), _gen(MLL, "bf16", 4, 1024, 64, tier=20),
               _fwd(MLL, "bf16", 1, 8192, tier=20)):
        sc["auto_class"] = "image-text-to-text"
        s.append(sc)
    sc = _gen(MLL, "bf16", 2, 2048, 32, tier=20)
    sc["auto_class"] = "image-text-to-text"
    sc["config_override"] = _mllama_cut(10, [3, 8])
    sc["sched_params"] = 4_100_000_000
    sc["id"] = sc["id"].replace(MLL, MLL + "-L10") + "-pretrained"
    sc["load"] = "from_pretrained"
    s.append(sc)
    return _held_out(s, build_issue15_final, build_issue15_final_check)


def build_issue15_all():
    """Both issue-15 sets, run in the same device commands (the held-out records are kept in their own file)."""
    return build_issue15() + build_issue15_holdout()


@functools.lru_cache(maxsize=None)
def _ids(build):
    """A set's scenario ids, built once (each held-out set checks against the earlier ones, which check theirs)."""
    return frozenset(sc["id"] for sc in build())


def _held_out(s, *earlier_sets):
    """A held-out set: refuses any scenario id of the earlier sets, then the usual checks."""
    earlier = {sid for build in earlier_sets for sid in _ids(build)}
    for sc in s:
        if sc["id"] in earlier:
            raise ValueError(f"held-out scenario {sc['id']} is in an earlier set")
    return _checked(s)


def _checked(s):
    # sanity: positions, unique ids, estimates
    seen = set()
    for sc in s:
        if sc["id"] in seen:
            raise ValueError("duplicate scenario id " + sc["id"])
        seen.add(sc["id"])
        length = sc["seq"] if sc["mode"] == "train" else sc["prompt"] + (sc["new_tokens"] or 0)
        if dims(sc["model"])["model_type"] not in ("bloom", "falcon") and length > max_positions(sc["model"]):
            raise ValueError(f"{sc['id']}: {length} tokens exceed max_position_embeddings")
        sc["est_gib"] = estimate_gib(sc)
    return s


def ordered(scenarios):
    """Run order: by tier, then biggest estimate first, so long/big runs don't straggle at the end."""
    return sorted(scenarios, key=lambda sc: (sc["tier"], -sc["est_gib"], sc["id"]))


if __name__ == "__main__":
    sc = ordered(build_scenarios())
    for x in sc:
        print(f"{x['tier']} {x['est_gib']:7.1f} GiB  {x['id']}")
    print(len(sc), "scenarios;", sum(1 for x in sc if x["mode"] == "train"), "training")
