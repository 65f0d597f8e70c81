"""FLUX LoRA weights in other tools' layouts.

- diffusers: the peft state dict with a "transformer." prefix, plus the LoraConfig as "lora_adapter_metadata"
  (what `FluxPipeline.save_lora_weights` writes and `FluxKontextPipeline.load_lora_weights` reads).
- ComfyUI: sd-scripts ("kohya") names of the original FLUX modules, `lora_unet_<module>.lora_down/lora_up/alpha`.
  The original model fuses q, k, v (and, in single blocks, the MLP input) into one Linear; a LoRA per split
  Linear becomes one LoRA of the fused Linear with the A matrices stacked and the B matrices block-diagonal,
  which is exact: B_fused A_fused x = [B_q A_q x; B_k A_k x; B_v A_v x]. The fused rank is n*r, so alpha is
  written as n*alpha to keep the scale alpha / r.
"""

from __future__ import annotations

import json
import re

import torch

from byg_cli.errors import BygError

DOUBLE = (  # diffusers sub-modules of transformer_blocks.N -> the original double_blocks.N module
    (("attn.to_q", "attn.to_k", "attn.to_v"), "img_attn_qkv"),
    (("attn.to_out.0",), "img_attn_proj"),
    (("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"), "txt_attn_qkv"),
    (("attn.to_add_out",), "txt_attn_proj"),
    (("ff.net.0.proj",), "img_mlp_0"),
    (("ff.net.2",), "img_mlp_2"),
    (("ff_context.net.0.proj",), "txt_mlp_0"),
    (("ff_context.net.2",), "txt_mlp_2"),
    (("norm1.linear",), "img_mod_lin"),
    (("norm1_context.linear",), "txt_mod_lin"),
)
SINGLE = (  # single_transformer_blocks.N -> single_blocks.N
    (("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), "linear1"),
    (("proj_out",), "linear2"),
    (("norm.linear",), "modulation_lin"),
)
_MODULE = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)\.lora_([AB])\.weight$")


def diffusers_state_dict(lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"transformer.{k}": v.contiguous() for k, v in lora.items()}


def diffusers_metadata(rank: int, alpha: float, targets: list[str]) -> dict[str, str]:
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=True).to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    return {"lora_adapter_metadata": json.dumps({f"transformer.{k}": v for k, v in config.items()}, indent=2,
                                                sort_keys=True)}


def comfyui_state_dict(lora: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    modules: dict[tuple[str, int], dict[str, dict[str, torch.Tensor]]] = {}
    for key, value in lora.items():
        m = _MODULE.match(key)
        if m is None:
            raise BygError(f"ComfyUI export: LoRA tensor '{key}' is on a module the original FLUX layout lacks "
                           f"(export it in diffusers format instead)")
        kind, block, sub, ab = m.groups()
        modules.setdefault((kind, int(block)), {}).setdefault(sub, {})[ab] = value
    out: dict[str, torch.Tensor] = {}
    for (kind, block), subs in sorted(modules.items()):
        table, name = (DOUBLE, "double_blocks") if kind == "transformer_blocks" else (SINGLE, "single_blocks")
        used = set()
        for parts, target in table:
            present = [p for p in parts if p in subs]
            if not present:
                continue
            if len(present) != len(parts):
                lacking = sorted(set(parts) - set(present))
                raise BygError(f"ComfyUI export: {kind}.{block} has LoRA on {', '.join(present)} but not on "
                               f"{', '.join(lacking)}; the original FLUX fuses them into one layer "
                               f"(target all of them, or export in diffusers format)")
            downs = [subs[p]["A"].float() for p in parts]
            ups = [subs[p]["B"].float() for p in parts]
            prefix = f"lora_unet_{name}_{block}_{target}"
            out[f"{prefix}.lora_down.weight"] = torch.cat(downs, 0).contiguous()
            out[f"{prefix}.lora_up.weight"] = torch.block_diag(*ups).contiguous()
            out[f"{prefix}.alpha"] = torch.tensor(float(alpha) * len(parts))
            used.update(parts)
        unknown = sorted(set(subs) - used)
        if unknown:
            raise BygError(f"ComfyUI export: no original FLUX name for {kind}.{block}.{unknown[0]}")
    return out
