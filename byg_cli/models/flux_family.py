"""The FLUX family as recipes, `byg train` and `byg export` know it: its [model] section, its backbone
(byg_cli.models.flux), its tiny random model (byg_cli.models.tiny) and the LoRA layouts other tools read."""

from byg_cli.models.flux import FluxBackbone, FluxLoraExport, FluxModelConfig
from byg_cli.models.registry import Family, register_family
from byg_cli.models.tiny import create_tiny_flux

FLUX = register_family(Family(name="flux", config=FluxModelConfig, backbone=FluxBackbone, create=create_tiny_flux,
                              folder_class_prefix="Flux", lora_export=FluxLoraExport()))
