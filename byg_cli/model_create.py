"""A recipe's [model.create]: the tiny model of the recipe's family written at model.path if that folder does not
hold a model yet. Its tokenizer's words come from the recipe's data (the shapes world's captions and
instructions) or from a small default corpus."""

from __future__ import annotations

from pathlib import Path


def vocabulary(name: str, data_kind: str) -> list[str]:
    """The words of a tiny model's tokenizer: the shapes world's of the recipe's data kind, or the default."""
    if name == "default":
        from byg_cli.models.text import DEFAULT_CORPUS

        return list(DEFAULT_CORPUS)
    if data_kind.startswith("shapes_video"):
        from byg_cli.data.shapes_video import shapes_video_corpus

        return shapes_video_corpus()
    from byg_cli.data.shapes_edits import shapes_corpus

    return shapes_corpus()


def create_if_missing(recipe) -> None:
    """Write recipe.model.create's tiny model at recipe.model.path, unless a model is there already."""
    from byg_cli.errors import BygError
    from byg_cli.models.registry import family

    m = recipe.model
    if m.create is None or (Path(m.path) / "model_index.json").is_file():
        return
    create = family(m.family).create
    if create is None:
        raise BygError(f"model.create: the {m.family} family cannot create a tiny model")
    create(m, vocabulary(m.create.vocabulary, recipe.data.kind))
