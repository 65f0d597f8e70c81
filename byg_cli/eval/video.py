"""`byg eval video`: the reference-based video-editing metrics of the paper's Table 1, mean ± SEM per method.

For every source video and each edited folder (one per method) with a video of the same id: CLIP directional
similarity and DINO per-frame similarity (needing the source and target captions), motion fidelity, and the
VBench dimensions dynamic degree, aesthetic quality and temporal flickering. The no-reference VBench
dimensions are also computed for the source videos themselves (row "source"). A metric runs when the model it
needs is given; temporal flickering needs none. Per-video results are cached as JSON so a rerun only computes
what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from byg_cli.errors import BygError
from byg_cli.eval import report
from byg_cli.eval import video_metrics as vm
from byg_cli.eval.edit_bench import safe_name
from byg_cli.eval.motion_fidelity import FORMULAS, motion_fidelity, tracks_from_flows
from byg_cli.eval.progress import eval_progress
from byg_cli.eval.stats import mean_sem
from byg_cli.eval.video_io import Video, list_videos, read_video
from byg_cli.text_files import read_text

METRICS = {  # key -> (column title, needs an edited video)
    "clip_dir": ("CLIP dir", True),
    "dino_sim": ("DINO Sim.", True),
    "motion_fidelity": ("Motion Fid.", True),
    "dynamic_degree": ("Dyn. Deg.", False),
    "aesthetic": ("Aesthetic", False),
    "temporal_flicker": ("Temp. Flicker", False),
}
SOURCE = "source"
CLIP_DIR_PREPROCESS = ("squash", "crop")  # InstructPix2Pix's whole-frame squash, or short side + centre crop


@dataclass
class VideoModels:
    clip: object | None = None  # ClipEncoder
    dino: object | None = None  # DinoEncoder
    flow: object | None = None  # FlowEstimator
    aesthetic_head: torch.nn.Linear | None = None
    tracks_dir: Path | None = None  # precomputed tracks: <dir>/<method or "source">/<id>.npy, (N, T, 2)
    motion_formula: str = "symmetric"
    track_grid: int = 30
    clip_preprocess: str = "squash"  # CLIP directional similarity: "squash" (InstructPix2Pix) or "crop"

    def settings(self) -> dict:
        """The preprocessing behind the cached per-video numbers (a cache made otherwise is recomputed)."""
        return {"clip_dir": self.clip_preprocess, "aesthetic": "vbench", "dynamic_degree": "vbench-check_move",
                "motion_fidelity": self.motion_formula}

    def available(self) -> dict[str, str | None]:
        """metric -> None when it can run, else why not."""
        return {
            "clip_dir": None if self.clip else "no --clip model",
            "dino_sim": None if self.dino else "no --dino model",
            "motion_fidelity": None if (self.flow or self.tracks_dir) else "no --raft weights or --tracks folder",
            "dynamic_degree": None if self.flow else "no --raft weights",
            "aesthetic": None if (self.clip and self.aesthetic_head is not None) else "needs --clip and --aesthetic-head",
            "temporal_flicker": None,
        }


def read_captions(path: Path) -> dict[str, tuple[str, str]]:
    """JSONL lines {"id", "source_caption", "target_caption"}, or one JSON object
    {id: {"source_caption", "target_caption"}}."""
    if not path.exists():
        raise BygError(f"captions {path}: no such file")
    text = read_text(path)
    records: list[tuple[str, dict]] = []
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "id" not in whole:  # a one-line JSONL file is a JSON object too
        records = [(f"{path} key {k}", {"id": k, **v}) if isinstance(v, dict) else (f"{path} key {k}", {})
                   for k, v in whole.items()]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append((f"{path}:{lineno}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise BygError(f"{path}:{lineno}: not JSON ({err})") from err
    out = {}
    for where, rec in records:
        for name in ("id", "source_caption", "target_caption"):
            if not isinstance(rec.get(name), str) or not rec[name].strip():
                raise BygError(f"{where}: field {name!r} must be a non-empty string")
        out[rec["id"]] = (rec["source_caption"], rec["target_caption"])
    return out


def _load_tracks(models: VideoModels, label: str, vid: str) -> torch.Tensor | None:
    if models.tracks_dir is None:
        return None
    path = models.tracks_dir / label / f"{vid}.npy"
    if not path.exists():
        return None
    arr = np.load(path)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise BygError(f"{path}: tracks must have shape (N, T, 2), got {arr.shape}")
    return torch.from_numpy(arr).float()


class VideoScorer:
    def __init__(self, models: VideoModels):
        self.models = models
        self.skip = {k: why for k, why in models.available().items() if why}
        self._source_key: str | None = None  # features of the current source video, shared by all methods
        self._source_features: dict[str, torch.Tensor] = {}

    def _source(self, vid: str, what: str, compute) -> torch.Tensor:
        """Source-video features (over all its frames) computed once, whichever method is compared."""
        if self._source_key != vid:
            self._source_key, self._source_features = vid, {}
        if what not in self._source_features:
            self._source_features[what] = compute()
        return self._source_features[what]

    def no_reference(self, video: Video) -> dict[str, float]:
        m, out = self.models, {}
        out["temporal_flicker"] = vm.temporal_flickering(video.frames)
        if "dynamic_degree" not in self.skip:
            sampled = video.subsampled_for_motion()
            flows = m.flow.pair_flows(sampled) if len(sampled) > 1 else []  # one frame: no pair, not dynamic
            scores = [vm.top_fraction_mean(f) for f in flows]
            h, w = sampled.shape[1:3]
            out["dynamic_degree"] = float(vm.is_dynamic(scores, h, w, len(sampled), video.fps))
        if "aesthetic" not in self.skip:
            emb = m.clip.images(video.frames, preprocess="vbench")
            with torch.no_grad():
                out["aesthetic"] = float(vm.aesthetic_scores(emb, m.aesthetic_head).mean())
        return out

    def _tracks(self, video: Video, label: str, vid: str) -> torch.Tensor:
        """(N, T, 2) tracks over all frames: from the tracks folder, else along RAFT flows (tracking is causal,
        so the first n frames' tracks are the same as tracking n frames)."""
        tracks = _load_tracks(self.models, label, vid)
        if tracks is None:
            if self.models.flow is None:
                raise BygError(f"no tracks for {label}/{vid} in {self.models.tracks_dir} and no --raft to make them")
            flows = self.models.flow.pair_flows(video.frames)
            h, w = video.frames.shape[1:3]
            tracks = tracks_from_flows(_unpad(flows, h, w), self.models.track_grid)
        return tracks

    def with_reference(self, source: Video, edited: Video, captions: tuple[str, str] | None, vid: str,
                       method: str) -> dict[str, float]:
        m, out = self.models, {}
        n = min(len(source.frames), len(edited.frames))  # frame t of the source against frame t of the edit
        edt = edited.frames[:n]
        if "clip_dir" not in self.skip and captions is not None:
            txt = m.clip.texts(list(captions))
            embed = lambda frames: m.clip.images(frames, preprocess=m.clip_preprocess)  # noqa: E731
            src_emb = self._source(vid, "clip", lambda: embed(source.frames))[:n]
            sims = vm.directional_similarity(src_emb, embed(edt), txt[0], txt[1])
            out["clip_dir"] = vm.finite_mean(sims)
        if "dino_sim" not in self.skip:
            src_cls = self._source(vid, "dino", lambda: m.dino.cls(source.frames))[:n]
            out["dino_sim"] = float(vm.per_frame_cosine(src_cls, m.dino.cls(edt)).mean())
        if "motion_fidelity" not in self.skip and n >= 2:
            src_tracks = self._source(vid, "tracks", lambda: self._tracks(source, SOURCE, vid))[:, :n]
            edit_tracks = self._tracks(Video(edt, edited.fps, edited.path), method, vid)[:, :n]
            if src_tracks.shape[1] != edit_tracks.shape[1]:
                raise BygError(f"video {vid!r}: the source's tracks span {src_tracks.shape[1]} frames, {method}'s "
                               f"{edit_tracks.shape[1]} (tracks must cover the compared {n} frames)")
            out["motion_fidelity"] = motion_fidelity(src_tracks, edit_tracks, m.motion_formula)
        return out


def _unpad(flows: torch.Tensor, h: int, w: int) -> torch.Tensor:
    ph, pw = flows.shape[-2] - h, flows.shape[-1] - w
    return flows[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]


def _read_cached(path: Path) -> dict | None:
    """A video's cached metrics; None when there are none or the file is torn (a kill while it was written), so
    they are computed again."""
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, not UTF-8 or not JSON
        return None
    return cached if isinstance(cached, dict) else None


def run_video(source_dir: Path, edited: dict[str, Path], captions_path: Path, out: Path, models: VideoModels,
              *, console: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    if models.motion_formula not in FORMULAS:
        raise BygError(f"motion formula {models.motion_formula!r}: choose from {FORMULAS}")
    if models.clip_preprocess not in CLIP_DIR_PREPROCESS:
        raise BygError(f"CLIP dir preprocessing {models.clip_preprocess!r}: choose from {CLIP_DIR_PREPROCESS}")
    if SOURCE in edited:
        raise BygError(f"method name {SOURCE!r} is reserved for the source videos")
    sources = list_videos(source_dir)
    if not sources:
        raise BygError(f"--source {source_dir}: no videos in it")
    captions = read_captions(captions_path)
    no_caption = sorted(set(sources) - set(captions))
    if no_caption and models.clip is not None:
        raise BygError(f"{captions_path}: no captions for video id(s) {no_caption[:5]}")
    edited_videos = {name: list_videos(folder) for name, folder in edited.items()}
    scorer = VideoScorer(models)
    for metric, why in scorer.skip.items():
        console.print(f"[yellow]skipping {METRICS[metric][0]}: {why}")
    cache = out / "per-video"
    per_method: dict[str, dict[str, dict]] = {SOURCE: {}, **{name: {} for name in edited}}
    jobs = [(label, vid) for vid in sources for label in [SOURCE, *edited]
            if label == SOURCE or vid in edited_videos[label]]  # each source read once, then its edits
    with eval_progress(console) as progress:
        task = progress.add_task("video metrics", total=len(jobs))
        source_cache: dict[str, Video] = {}
        for label, vid in jobs:
            path = cache / safe_name(label) / f"{safe_name(vid)}.json"
            cached = _read_cached(path)
            if cached is not None and cached.get("settings") == models.settings():
                per_method[label][vid] = cached
                progress.advance(task)
                continue
            if vid not in source_cache:
                source_cache = {vid: read_video(sources[vid])}  # keep only the current source in memory
            src = source_cache[vid]
            if label == SOURCE:
                result = scorer.no_reference(src)
            else:
                edt = read_video(edited_videos[label][vid])
                result = {**scorer.no_reference(edt), **scorer.with_reference(src, edt, captions.get(vid), vid, label)}
            result["settings"] = models.settings()
            report.write_json(path, result)
            per_method[label][vid] = result
            progress.advance(task)
    missing = {name: sorted(set(sources) - set(edited_videos[name])) for name in edited}
    return video_report(out, per_method, missing, models, console)


def video_report(out: Path, per_method: dict[str, dict[str, dict]], missing: dict[str, list[str]],
                 models: VideoModels, console: Console) -> dict:
    summary = {}
    for method, videos in per_method.items():
        summary[method] = {k: mean_sem([v[k] for v in videos.values() if k in v]).to_dict() for k in METRICS}
    data = {"methods": summary, "videos": {m: len(v) for m, v in per_method.items()}, "missing_edits": missing,
            "motion_fidelity_formula": models.motion_formula, "preprocessing": models.settings(),
            "per_video": per_method}
    report.write_json(out / "video-metrics.json", data)
    headers = ["Method"] + [f"{title} ↑" for title, _ in METRICS.values()] + ["videos"]
    rows = []
    for method, s in summary.items():
        cells = []
        for k, (_, needs_edit) in METRICS.items():
            entry = s[k]
            if method == SOURCE and needs_edit or entry["n"] == 0:
                cells.append("–")
            else:
                cells.append(f"{entry['mean']:.3f}" + (f" ± {entry['sem']:.3f}" if entry["sem"] is not None else ""))
        rows.append([method] + cells + [str(len(per_method[method]))])
    md = "\n".join([
        "# Video editing metrics (mean ± SEM over videos)", "",
        report.markdown_table(headers, rows), "",
        f"Motion fidelity formula: {models.motion_formula}. CLIP dir preprocessing: {models.clip_preprocess}. "
        "Missing edits: " + (", ".join(f"{m}: {len(v)}" for m, v in missing.items()) or "none") + ".", "",
        "Temporal flickering is defined by VBench for static-camera clips only; on moving clips it also measures "
        "the motion.", ""])
    (out / "video-metrics.md").write_text(md, encoding="utf-8")
    metrics = [k for k in METRICS if any(s[k]["n"] for s in summary.values())]
    report.grouped_bars(out / "video-metrics.png", [METRICS[k][0] for k in metrics],
                        {m: [s[k]["mean"] for k in metrics] for m, s in summary.items()},
                        errors={m: [s[k]["sem"] for k in metrics] for m, s in summary.items()},
                        title="Video editing metrics (mean ± SEM)", ylabel="score")
    console.print(md, markup=False, highlight=False)
    return {"summary": summary, "report": {"json": str(out / "video-metrics.json"),
                                           "markdown": str(out / "video-metrics.md"),
                                           "plot": str(out / "video-metrics.png")}}


def parse_edited(specs: list[str]) -> dict[str, Path]:
    """`NAME=DIR` or `DIR` (named after the folder) -> {name: folder}."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, _, folder = spec.partition("=") if "=" in spec else ("", "", spec)
        path = Path(folder)
        name = name or path.name
        if name in out:
            raise BygError(f"--edited: two methods named {name!r}; write NAME=DIR")
        if not path.is_dir():
            raise BygError(f"--edited {spec}: {path} is not a folder")
        out[name] = path
    if not out:
        raise BygError("--edited: give at least one folder of edited videos")
    return out


def eval_video(*, source: Path, edited: list[str], captions: Path, out: Path, clip: Path | None = None,
               clip_arch: str | None = None, dino: Path | None = None, dino_size: int | None = None,
               raft: Path | None = None, raft_variant: str = "large", aesthetic_head: Path | None = None,
               tracks: Path | None = None, motion_formula: str = "symmetric", track_grid: int = 30,
               device: str | None = None, clip_preprocess: str = "squash") -> dict:
    """`byg eval video`: load the models that were given, then score every method."""
    from byg_cli.eval.video_models import ClipEncoder, DinoEncoder, FlowEstimator, load_aesthetic_head
    from byg_cli.extras import check

    edited_dirs = parse_edited(edited)
    if any(p.is_file() for folder in (source, *edited_dirs.values()) for p in list_videos(folder).values()):
        check("byg eval video on video files", "video")  # frame folders need no decoder
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    clip_model = ClipEncoder(clip, arch=clip_arch, device=device) if clip else None
    head = None
    if aesthetic_head is not None:
        if clip_model is None:
            raise BygError("--aesthetic-head needs --clip (the CLIP ViT-L/14 it was trained on)")
        head = load_aesthetic_head(aesthetic_head, clip_model.embed_dim)
    models = VideoModels(
        clip=clip_model, dino=DinoEncoder(dino, size=dino_size, device=device) if dino else None,
        flow=FlowEstimator(raft, variant=raft_variant, device=device) if raft else None,
        aesthetic_head=head, tracks_dir=tracks, motion_formula=motion_formula, track_grid=track_grid,
        clip_preprocess=clip_preprocess)
    return run_video(source, edited_dirs, captions, out, models)
