"""The face family's training recipe: FaceCNN on FER2013 `train/`, chosen and calibrated on `validation/`.

Resumable: every epoch writes `last.pt` (weights, optimiser, schedule, random
state) to the run folder, and a re-run with the same folder carries on from it;
the epoch with the best validation score is kept as `best.pt`. Augmentation is
done on whole batches with tensor ops (flips, rotation, scale and shift, brightness
and contrast, blur, an occluding patch), so one core spends its time in the
network, not in per-image Python.

    python -m emotionnet.training.face_recipe ../shared/data/FER2013 --run runs/face --out face.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from emotionnet.corpora.fer2013 import FER_CLASSES, read_split
from emotionnet.evaluation.metrics import expected_calibration_error, log_loss, summary
from emotionnet.labels import LABELS
from emotionnet.models.face.family import FAMILY
from emotionnet.models.face.network import FaceCNN
from emotionnet.models.file import save_model_file


@dataclass(frozen=True)
class FaceRecipe:
    channels: tuple[int, ...] = (32, 64, 128, 256)
    dropout: float = 0.3
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 0.05  # peak, after one warm-up epoch; cosine to zero
    weight_decay: float = 5e-4
    class_weight_power: float = 0.5  # weight of class c: (n / n_c) ** power, mean 1 (disgust is 1.5 %)
    seed: int = 0


def augment(faces: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A randomly altered copy of a (batch, 1, 48, 48) batch in [0, 1]: what faces vary by in the wild."""
    n = faces.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    angle = uniform(-15, 15) * math.pi / 180
    scale = uniform(0.85, 1.15)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, uniform(-0.1, 0.1)], 1),
                         torch.stack([sin * flip, cos, uniform(-0.1, 0.1)], 1)], 1)
    grid = F.affine_grid(theta, list(faces.shape), align_corners=False)
    out = F.grid_sample(faces, grid, padding_mode="border", align_corners=False)
    mean = out.mean(dim=(2, 3), keepdim=True)
    out = (out - mean) * uniform(0.7, 1.3, 1, 1, 1) + mean + uniform(-0.15, 0.15, 1, 1, 1)
    blurred = F.avg_pool2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    out = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.2, blurred, out)
    # An occluding patch (a hand, glasses, hair) on a third of the faces.
    size = (uniform(8, 20) * (torch.rand(n, generator=generator) < 0.33)).long()
    top, left = (uniform(0, 48) - size / 2).long(), (uniform(0, 48) - size / 2).long()
    rows, cols = torch.arange(48).view(1, 48, 1), torch.arange(48).view(1, 1, 48)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + size).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + size).view(-1, 1, 1)))
    out = torch.where(inside.unsqueeze(1), uniform(0, 1, 1, 1, 1), out)
    return out.clamp(0, 1)


def six_class_scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy and UAR over our six labels (surprise images left out, its logit dropped)."""
    keep = labels < len(LABELS)
    predicted = logits[keep, : len(LABELS)].argmax(1)
    truth = labels[keep]
    recalls = [float((predicted[truth == c] == c).float().mean()) for c in range(len(LABELS)) if (truth == c).any()]
    return {"accuracy": float((predicted == truth).float().mean()), "uar": float(np.mean(recalls)),
            "n": int(keep.sum())}


@torch.no_grad()
def predict_logits(model: FaceCNN, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    out = [model(torch.from_numpy(images[i:i + batch_size]).float().div(255).unsqueeze(1))
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def train(data: Path, run: Path, recipe: FaceRecipe, threads: int = 1, cache_dir: Path | None = None) -> dict:
    torch.set_num_threads(threads)
    run.mkdir(parents=True, exist_ok=True)
    x_train, y_train = read_split(data / "train", cache_dir)
    x_val, y_val = read_split(data / "validation", cache_dir)
    model = FaceCNN(recipe.channels, recipe.dropout, len(FER_CLASSES)).to(memory_format=torch.channels_last)
    counts = np.bincount(y_train, minlength=len(FER_CLASSES))
    weights = (counts.sum() / counts) ** recipe.class_weight_power
    weights = torch.tensor(weights / weights.mean(), dtype=torch.float32)
    optimiser = torch.optim.SGD(model.parameters(), lr=recipe.learning_rate, momentum=0.9, nesterov=True,
                                weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch

    def schedule(step: int) -> float:
        if step < steps_per_epoch:
            return (step + 1) / steps_per_epoch
        return 0.5 * (1 + math.cos(math.pi * (step - steps_per_epoch) / max(1, total - steps_per_epoch)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    state = {"epoch": 0, "best": None, "history": []}
    last = run / "last.pt"
    if last.is_file():
        saved = torch.load(last, weights_only=True)
        wanted = json.loads(json.dumps(asdict(recipe)))
        if {**saved["recipe"], "epochs": recipe.epochs} != wanted:
            raise SystemExit(f"{run}: holds a run of another recipe; use a new --run folder")
        if saved["recipe"]["epochs"] != recipe.epochs:  # the schedule is stretched or shortened from here on
            saved["state"].setdefault("schedule_changes", []).append(
                {"after_epoch": saved["state"]["epoch"], "from": saved["recipe"]["epochs"], "to": recipe.epochs})
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        state = saved["state"]
        print(f"resuming {run} after epoch {state['epoch']}")
    (run / "recipe.json").write_text(json.dumps(asdict(recipe), indent=1))
    images = torch.from_numpy(x_train)
    labels = torch.from_numpy(y_train)
    while state["epoch"] < recipe.epochs:
        epoch = state["epoch"] + 1
        model.train()
        started = time.time()
        order = torch.randperm(len(images), generator=generator)
        losses = []
        for i in tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{recipe.epochs}", leave=False):
            index = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            faces = augment(images[index].float().div(255).unsqueeze(1), generator)
            loss = F.cross_entropy(model(faces.contiguous(memory_format=torch.channels_last)), labels[index],
                                   weight=weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
        scores = six_class_scores(predict_logits(model, x_val), torch.from_numpy(y_val))
        scores.update(epoch=epoch, loss=float(np.mean(losses)), seconds=round(time.time() - started, 1))
        state["history"].append(scores)
        score = (scores["accuracy"] + scores["uar"]) / 2  # the choice: validation accuracy and UAR alike
        if state["best"] is None or score > state["best"]["score"]:
            state["best"] = {"epoch": epoch, "score": score, **scores}
            torch.save(model.state_dict(), run / "best.pt")
        state["epoch"] = epoch
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                    "recipe": json.loads(json.dumps(asdict(recipe))), "state": state}, run / "last.tmp")
        (run / "last.tmp").replace(last)
        with open(run / "log.jsonl", "a") as log:
            log.write(json.dumps(scores) + "\n")
        print(f"epoch {epoch}: loss {scores['loss']:.3f}, validation accuracy {scores['accuracy']:.3f}, "
              f"UAR {scores['uar']:.3f} ({scores['seconds']:.0f} s)", flush=True)
    return state


def export(data: Path, run: Path, out: Path, flip_average: bool | None = None, cache_dir: Path | None = None) -> dict:
    """The run's best epoch as a model file: temperature fitted on validation, figures recorded.

    `flip_average` (score each face and its mirror image, average the logits) is chosen on validation
    when None: kept if it raises validation (accuracy + UAR) / 2.
    """
    saved = json.loads((run / "recipe.json").read_text())
    recipe = FaceRecipe(**{**saved, "channels": tuple(saved["channels"])})
    state = torch.load(run / "last.pt", weights_only=True)["state"]
    model = FaceCNN(recipe.channels, recipe.dropout, len(FER_CLASSES))
    model.load_state_dict(torch.load(run / "best.pt", weights_only=True))
    x_val, y_val = read_split(data / "validation", cache_dir)
    answered = list(range(len(LABELS)))
    plain = predict_logits(model, x_val)
    mirrored = (plain + predict_logits(model, x_val[:, :, ::-1].copy())) / 2
    choices = {False: six_class_scores(plain, torch.from_numpy(y_val)),
               True: six_class_scores(mirrored, torch.from_numpy(y_val))}
    if flip_average is None:
        flip_average = (choices[True]["accuracy"] + choices[True]["uar"]) > \
            (choices[False]["accuracy"] + choices[False]["uar"])
    logits = mirrored if flip_average else plain
    calibration = fit_temperature(logits, y_val, answered)
    keep = y_val < len(LABELS)
    probabilities = answer_probabilities(logits[torch.from_numpy(keep)], answered, calibration["temperature"])
    validation = {**summary(y_val[keep], probabilities.argmax(1)),
                  "ece": expected_calibration_error(y_val[keep], probabilities)}
    record = {"recipe": "face", **asdict(recipe), "data": "FER2013 train/ (Training, 28,709 images, 7 classes)",
              "chosen_on": "FER2013 validation/ (PublicTest), six classes", "epochs_run": state["epoch"],
              "best_epoch": state["best"]["epoch"], "schedule_changes": state.get("schedule_changes", []),
              "seconds": round(sum(h["seconds"] for h in state["history"]), 1),
              "flip_average": {"used": flip_average, "validation": {str(k): v for k, v in choices.items()}}}
    save_face_model(out, model, recipe, temperature=calibration["temperature"], flip_average=flip_average,
                    training=record, calibration=calibration, metrics={"validation": validation})
    return {"validation": validation, "calibration": calibration, "flip_average": flip_average}


def save_face_model(path: str | Path, network: nn.Module, recipe: FaceRecipe, temperature: float,
                    flip_average: bool, training: dict, calibration: dict, metrics: dict) -> None:
    """A face model file: FaceCNN's weights, FER2013's classes as its outputs, our six as its answers."""
    save_model_file(path, network, {
        "labels": list(FER_CLASSES), "answers": list(LABELS), "temperature": temperature,
        "model": {"arch": FAMILY.name, "hparams": {"channels": list(recipe.channels), "dropout": recipe.dropout,
                                                   "flip_average": flip_average}},
        "training": {**training, "package_version": version("emotionnet"),
                     "torch": torch.__version__},
        "calibration": calibration, "metrics": metrics,
    })


# Calibration: the softmax temperature over the answered classes, fitted on validation images.

def answer_probabilities(logits: torch.Tensor | np.ndarray, answered: list[int], temperature: float) -> np.ndarray:
    """(n, len(answered)) probabilities over the answered classes only: other logits (surprise) are left out."""
    logits = torch.as_tensor(logits, dtype=torch.float32)[:, answered]
    return torch.softmax(logits / temperature, dim=1).numpy()


def fit_temperature(logits: torch.Tensor | np.ndarray, labels: np.ndarray, answered: list[int]) -> dict:
    """The temperature minimising log-loss over the images whose label is answered, with ECE before and after."""
    labels = np.asarray(labels)
    keep = np.isin(labels, answered)
    logits = torch.as_tensor(logits)[torch.from_numpy(keep)]
    truth = np.searchsorted(np.array(answered), labels[keep])
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 80))
    losses = [log_loss(truth, answer_probabilities(logits, answered, float(t))) for t in grid]
    best = float(grid[int(np.argmin(losses))])
    return {"temperature": best, "images": int(keep.sum()),
            "ece_before": expected_calibration_error(truth, answer_probabilities(logits, answered, 1.0)),
            "ece": expected_calibration_error(truth, answer_probabilities(logits, answered, best)),
            "log_loss": float(min(losses))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="the FER2013 folder (train/ and validation/)")
    parser.add_argument("--run", type=Path, required=True, help="run folder: checkpoints, log; re-run to resume")
    parser.add_argument("--epochs", type=int, default=FaceRecipe.epochs)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="where to keep the decoded images")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the best epoch as a model file here (calibrated on validation)")
    args = parser.parse_args(argv)
    state = train(args.data, args.run, FaceRecipe(epochs=args.epochs), args.threads, args.cache)
    print(json.dumps(state["best"]))
    if args.out:
        print(json.dumps(export(args.data, args.run, args.out, cache_dir=args.cache)))


if __name__ == "__main__":
    main()
