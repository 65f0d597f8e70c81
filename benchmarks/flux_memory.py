"""Memory of FLUX.1-dev LoRA training, per configuration, from first principles (no weights needed).

1. Parameters: FLUX.1-dev's transformer config is built on the meta device (no memory), the byg LoRA (rank 64 on
   the recipe's 13 target projections) is attached, and parameters are counted exactly.
2. Activations: the bytes autograd keeps for backward (saved tensors, each storage counted once) are measured in
   bf16 on the CPU for one double-stream and one single-stream block of FLUX.1-dev's width (3072; 24 heads x 128)
   on a short sequence, per token, then scaled to the real token count. Attention probabilities are left out:
   CPU SDPA's math path keeps them, the GPU's flash / memory-efficient SDPA keeps only the output and a
   log-sum-exp. With gradient checkpointing every block keeps only its inputs, and one block's activations
   exist at a time during recomputation.

Run: python benchmarks/flux_memory.py   (about a minute on one CPU thread; prints the README table)
"""

from __future__ import annotations

import sys

import torch

GB = 1e9
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=[16, 56, 56])
TARGETS = ["attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0", "attn.add_k_proj", "attn.add_q_proj",
           "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
           "ff_context.net.2", "proj_mlp"]
T5_XXL_ENCODER = 4_762_310_656  # google/t5-v1_1-xxl encoder (FLUX.1-dev text_encoder_2)
CLIP_L = 123_060_480  # openai/clip-vit-large-patch14 text model (text_encoder)
VAE = 83_819_683  # FLUX.1-dev AutoencoderKL


def lora(transformer, rank: int) -> None:
    from peft import LoraConfig

    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS), adapter_name="edit")


def parameter_counts(rank: int = 64) -> tuple[int, int]:
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        t = FluxTransformer2DModel(**FLUX_DEV)
        base = sum(p.numel() for p in t.parameters())
        lora(t, rank)
    adapter = sum(p.numel() for n, p in t.named_parameters() if "lora_" in n)
    return base, adapter


def saved_bytes_per_token(double: int, single: int, side: int = 6, text: int = 16, rank: int = 64) -> float:
    """Saved-for-backward bytes of a bf16 FLUX-width model with `double`/`single` blocks, per sequence token."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    cfg = dict(FLUX_DEV, num_layers=double, num_single_layers=single)
    with torch.device("meta"):
        t = FluxTransformer2DModel(**cfg)
    t = t.to_empty(device="cpu").to(dtype=torch.bfloat16)
    with torch.no_grad():
        for p in t.parameters():
            p.normal_(0, 0.02)
    t.requires_grad_(False)
    lora(t, rank)
    for n, p in t.named_parameters():
        if "lora_" in n:
            p.data = p.data.float()  # byg keeps LoRA in fp32
    n_img = side * side
    tokens = 2 * n_img  # noisy + source tokens
    seq = tokens + text
    seen: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in t.parameters()}

    def pack(x):
        if x.dim() >= 2 and x.shape[-1] == seq and x.shape[-2] == seq:
            return x  # attention probabilities: not kept by GPU flash / efficient SDPA
        st = x.untyped_storage()
        if st.data_ptr() in weights:
            return x  # weights are parameters, not activations
        seen[st.data_ptr()] = st.nbytes()
        return x

    img_ids = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).reshape(-1, 2)
    ids = torch.cat([torch.zeros(n_img, 1), img_ids], 1)
    ids = torch.cat([ids, ids + torch.tensor([1.0, 0, 0])]).to(torch.bfloat16)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        t(hidden_states=torch.randn(1, tokens, 64, dtype=torch.bfloat16),
          encoder_hidden_states=torch.randn(1, text, 4096, dtype=torch.bfloat16),
          pooled_projections=torch.randn(1, 768, dtype=torch.bfloat16),
          timestep=torch.tensor([0.5], dtype=torch.bfloat16), guidance=torch.tensor([3.5], dtype=torch.bfloat16),
          img_ids=ids, txt_ids=torch.zeros(text, 3, dtype=torch.bfloat16), return_dict=False)
    return sum(seen.values()) / seq


def main() -> None:
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    torch.set_num_threads(1)
    base, adapter = parameter_counts(64)
    per_double = saved_bytes_per_token(2, 0) - saved_bytes_per_token(1, 0)
    per_single = saved_bytes_per_token(1, 2) - saved_bytes_per_token(1, 1)
    dim = 3072
    weights = base * 2
    adapters = 2 * adapter * 4 + adapter * 4 + 2 * adapter * 4  # edit + EMA, edit gradients, AdamW moments (fp32)
    encoders = (T5_XXL_ENCODER + CLIP_L + VAE) * 2
    print(f"transformer parameters: {base:,} -> bf16 {weights / GB:.1f} GB")
    print(f"LoRA rank 64 parameters: {adapter:,}; edit + EMA adapters fp32 {2 * adapter * 4 / GB:.2f} GB, "
          f"gradients fp32 {adapter * 4 / GB:.2f} GB, AdamW moments fp32 {2 * adapter * 4 / GB:.2f} GB")
    print(f"text encoders + VAE bf16: {encoders / GB:.1f} GB (0 on the GPU when cached and offloaded)")
    print(f"saved activations per token: double block {per_double / 1e3:.1f} kB, single block {per_single / 1e3:.1f} kB")
    print("| image | tokens per pass | objective | checkpointing | activations | per GPU, encoders cached | "
          "per GPU, encoders on GPU |")
    print("|---|---|---|---|---|---|---|")
    for res in (512, 1024):
        img = (res // 16) ** 2
        seq = 2 * img + 512  # noisy + source (Kontext-style) + T5 tokens
        full = seq * (19 * per_double + 38 * per_single)  # one sample through the model, everything kept
        inputs = seq * dim * 2 * (19 + 38)  # checkpointing keeps each block's bf16 input ...
        block = seq * max(per_double, per_single)  # ... and recomputes one block at a time
        # kept for backward per sample: supervised 1 pass; byg 3 (forward at batch b, reverse + identity at 2b)
        for objective, passes, widest in (("supervised", 1, 1), ("byg", 3, 2)):
            for ckpt in (False, True):
                act = passes * inputs + widest * block if ckpt else passes * full
                total = weights + adapters + act
                print(f"| {res}x{res} | {seq} | {objective} | {'yes' if ckpt else 'no'} | {act / GB:.1f} GB | "
                      f"{total / GB:.1f} GB | {(total + encoders) / GB:.1f} GB |")

if __name__ == "__main__":
    sys.exit(main())
