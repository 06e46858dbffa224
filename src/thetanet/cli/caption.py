"""``thetanet caption``: train, evaluate and run the digit-scene captioner (From images to text).

- ``train [--no-attention] [--plots DIR] [--out M]``: trains on fresh scenes of the training
  digits (the 8,000 of ``digits --dataset mnist-t10k``), progress on stderr, saves the model.
- ``evaluate --model M [--seed S] [--n N] [--json]``: N fresh scenes of the held-out 2,000
  digits, drawn with seed S; exact caption match, BLEU-4 and per-word accuracy.
- ``predict --model M IMAGE.png|.npy``: the caption of one scene image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.captions import metrics as _metrics
from thetanet.captions.model import CaptionConfig, Captioner, grid_extent
from thetanet.captions.train import TrainConfig, caption_images, train
from thetanet.cli import CLIError, positive_int
from thetanet.cli.arguments import input_file, output_dir
from thetanet.data import scenes as _scenes
from thetanet.files import ModelFileError
from thetanet.utils import blas_threads

__all__ = ["register"]

_DEFAULT_OUT = "caption-model"
_MAX_IMAGE_BYTES = 64 << 20


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "caption", help="from images to text: caption scenes of MNIST digits",
        description="A CNN encoder and an LSTM decoder with attention (the lecture's Figure 3) "
                    "that writes sentences such as 'a large seven to the left of a small two' "
                    "for scenes of 1-3 MNIST digits.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    t = sub.add_parser("train", help="train a captioner on fresh training scenes")
    _common(t)
    t.add_argument("--no-attention", action="store_true",
                   help="the baseline: the whole feature map at every step, no attention")
    t.add_argument("--plots", metavar="DIR", default=None,
                   help="write learning_curves.png and attention_<i>.png (test scenes, each "
                        "generated word's attention map over the image) into DIR")
    t.add_argument("--out", metavar="M", default=_DEFAULT_OUT,
                   help=f"model directory to write (default {_DEFAULT_OUT})")
    t.add_argument("--seed", type=int, default=0, help="seed for Θ and the scenes (default 0)")
    t.add_argument("--epochs", type=positive_int, default=None, help="epochs (default: recipe)")
    t.add_argument("--scenes", type=positive_int, default=None,
                   help="fresh training scenes per epoch (default: recipe)")
    t.add_argument("--val-scenes", type=positive_int, default=None,
                   help="validation scenes captioned after each epoch (default: recipe)")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.set_defaults(func=run_train)
    e = sub.add_parser("evaluate", help="caption fresh scenes of the held-out digits")
    _common(e)
    e.add_argument("--model", metavar="M", required=True, help="a model from caption train")
    e.add_argument("--seed", type=int, default=1, help="seed of the test scenes (default 1)")
    e.add_argument("--n", type=positive_int, default=1000, help="test scenes (default 1000)")
    e.add_argument("--beam", type=positive_int, default=1,
                   help="beam width (default 1: greedy decoding)")
    e.add_argument("--json", action="store_true", help="print the scores as JSON")
    e.set_defaults(func=run_evaluate)
    r = sub.add_parser("predict", help="caption one scene image")
    r.add_argument("--model", metavar="M", required=True, help="a model from caption train")
    r.add_argument("image", metavar="IMAGE", help="a .npy (H×W floats in [0, 1]) or a .png "
                   "(grey or colour, white digits on black) of the model's canvas size")
    r.add_argument("--beam", type=positive_int, default=1, help="beam width (default 1)")
    r.set_defaults(func=run_predict)
    p.set_defaults(func=lambda args: _usage(p))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="data root (default $THETANET_DATA, else ~/.cache/thetanet); MNIST "
                        "t10k is read from <root>/mnist/")


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


class _Progress:
    """Lines on stderr, prefixed with the time since the start (as ``nc train``)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.start = quiet, time.monotonic()

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.start:6.1f} s] {text}", file=sys.stderr,
                  flush=True)


def _digits(data_dir: str | None) -> _scenes.SceneDigits:
    try:
        return _scenes.load_scene_digits(data_dir)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read MNIST t10k: {exc}") from None


def _load(path: str) -> tuple[Captioner, dict[str, Any]]:
    if not os.path.isdir(path):
        raise CLIError(f"--model {path}: no such model directory")
    try:
        return Captioner.load(path)
    except (ModelFileError, ValueError, OSError) as exc:
        raise CLIError(f"--model {path}: {exc}") from None


def run_train(args: argparse.Namespace) -> int:
    output_dir("--out", args.out)
    output_dir("--plots", args.plots)
    if args.plots:
        _check_plotting()
    say = _Progress(args.quiet)
    recipe = TrainConfig(seed=args.seed)
    if args.epochs:
        recipe.epochs = args.epochs
    if args.scenes:
        recipe.scenes_per_epoch = args.scenes
    if args.val_scenes:
        recipe.val_scenes = args.val_scenes
    config = CaptionConfig(attention=not args.no_attention)
    say("loading the digits (MNIST t10k: 8,000 for training scenes, 2,000 held out)")
    digits = _digits(args.data_dir)
    cap = Captioner(config, seed=args.seed)
    kind = "with attention" if config.attention else "without attention"
    say(f"training the captioner {kind}: {cap.train.count_params():,} parameters, "
        f"{recipe.epochs} epochs of {recipe.scenes_per_epoch:,} fresh scenes")
    started = time.monotonic()
    with blas_threads(1):  # small products: one thread wins on shared cores
        history = train(cap, digits, recipe, report=say, report_every=4.0)
    seconds = time.monotonic() - started
    cap.save(args.out, metadata={"recipe": recipe.to_json(), "history": history,
                                 "train_seconds": round(seconds, 1)})
    say(f"saved the model to {args.out} ({seconds:.0f} s of training)")
    if args.plots:
        for path in _write_plots(Path(args.plots), cap, digits, history, args.seed):
            say(f"wrote {path}")
    return 0


def _check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plots needs matplotlib: pip install 'thetanet[plot]'") from None


def _write_plots(directory: Path, cap: Captioner, digits: _scenes.SceneDigits,
                 history: dict[str, list[float]], seed: int, n: int = 3) -> list[Path]:
    from thetanet.plots import plot_attention, plot_learning_curves

    directory.mkdir(parents=True, exist_ok=True)
    paths = [plot_learning_curves(history, directory / "learning_curves.png",
                                  title="captioner: training loss, validation scenes")]
    if not cap.config.attention:
        return paths
    scenes = _scenes.make_scenes(digits.test_images, digits.test_labels, n, seed=seed + 1,
                                 canvas=cap.config.canvas)
    hyps = caption_images(cap, scenes.images)
    for i, (img, hyp, ref) in enumerate(zip(scenes.images, hyps, scenes.captions)):
        words = hyp.split() or ["<end>"]
        alpha = cap.attention_maps(img[None], [" ".join(words)])[0]
        title = f"generated: {hyp}" + ("" if hyp == ref else f"\ntrue: {ref}")
        paths.append(plot_attention(img, words, alpha, directory / f"attention_{i}.png",
                                    title=title, extent=grid_extent(cap.config)))
    return paths


def run_evaluate(args: argparse.Namespace) -> int:
    cap, _ = _load(args.model)
    digits = _digits(args.data_dir)
    scenes = _scenes.make_scenes(digits.test_images, digits.test_labels, args.n,
                                 seed=args.seed, canvas=cap.config.canvas)
    with blas_threads(1):
        hyps = caption_images(cap, scenes.images, beam_width=args.beam)
    scores = _metrics.caption_scores(scenes.captions, hyps)
    doc = {**scores, "n": args.n, "seed": args.seed, "beam": args.beam,
           "attention": cap.config.attention}
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(f"{args.n} test scenes (held-out digits, seed {args.seed}), "
              f"{'greedy' if args.beam == 1 else f'beam {args.beam}'}: exact match "
              f"{scores['exact_match']:.3f}, BLEU-4 {scores['bleu4']:.4f}, per-word accuracy "
              f"{scores['word_accuracy']:.4f}")
    return 0


def _read_image(path: str) -> np.ndarray:
    input_file("IMAGE", path)
    if os.path.getsize(path) > _MAX_IMAGE_BYTES:
        raise CLIError(f"{path}: larger than {_MAX_IMAGE_BYTES >> 20} MiB")
    try:
        if path.lower().endswith(".npy"):
            img = np.load(path, allow_pickle=False)
        elif path.lower().endswith(".png"):
            from matplotlib.image import imread

            img = imread(path)
            if img.ndim == 3:  # colour (and alpha): the mean of the colour channels
                img = img[..., :3].mean(axis=2)
        else:
            raise CLIError(f"{path}: an image must be .png or .npy")
    except (OSError, ValueError, SyntaxError) as exc:
        raise CLIError(f"{path}: cannot read the image: {exc}") from None
    except ImportError:
        raise CLIError("reading .png needs matplotlib: pip install 'thetanet[plot]'") from None
    img = np.asarray(img, np.float64)
    if img.ndim != 2 or not np.isfinite(img).all():
        raise CLIError(f"{path}: need one 2-D image of finite values, got shape {img.shape}")
    if img.max() > 1.0:  # 0..255 grey levels
        img = img / 255.0
    return img


def run_predict(args: argparse.Namespace) -> int:
    cap, _ = _load(args.model)
    img = _read_image(args.image)
    c = cap.config.canvas
    if img.shape != (c, c):
        raise CLIError(f"{args.image}: the model reads {c}×{c} images, got "
                       f"{img.shape[0]}×{img.shape[1]}")
    print(caption_images(cap, img[None], beam_width=args.beam)[0])
    return 0
