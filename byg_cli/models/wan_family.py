"""The Wan family as recipes and `byg train` know it: its [model] section, its backbone (byg_cli.models.wan) and
its tiny random model (byg_cli.models.tiny_wan)."""

from byg_cli.models.registry import Family, register_family
from byg_cli.models.tiny_wan import create_tiny_wan
from byg_cli.models.wan import WanBackbone, WanModelConfig

WAN = register_family(Family(name="wan", config=WanModelConfig, backbone=WanBackbone, create=create_tiny_wan,
                             folder_class_prefix="Wan"))
