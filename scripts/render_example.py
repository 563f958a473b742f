"""Render a small synthetic scene with its oriented boxes and a sample of its relations (lines between the
centres of related objects) to ``docs/synthetic_example.png`` for the README.

    python scripts/render_example.py [--seed 11] [--size 1024] [--layout mixed] [--out docs/synthetic_example.png]
"""

from __future__ import annotations

import argparse
import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def class_colour(k: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((k * 0.61803) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--gsd", type=float, default=0.5)
    p.add_argument("--layout", default="mixed")
    p.add_argument("--relations", type=int, default=150, help="number of relation lines to draw")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "synthetic_example.png"))
    args = p.parse_args(argv)

    from sgg.datasets.synthetic import generate_scene

    sg, image = generate_scene(args.seed, args.size, gsd=args.gsd, layout=args.layout, return_image=True)
    vocab = sg.vocabulary
    boxes = sg.detections.boxes
    corners = boxes.corners().numpy()
    labels = sg.detections.labels.numpy()
    canvas = Image.fromarray(image).convert("RGB")
    side = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for quad, lab in zip(corners, labels):
        draw.polygon([tuple(map(float, q)) for q in quad], outline=class_colour(int(lab)))
    # relation lines: a deterministic sample, one per predicate first so the tail shows too
    rng = np.random.default_rng(0)
    pred = sg.predicate_labels.numpy()
    first = np.unique(pred, return_index=True)[1]
    rest = rng.permutation(np.setdiff1d(np.arange(len(pred)), first))
    pick = np.concatenate([first, rest])[: args.relations]
    ctr = boxes.tensor[:, :2].numpy()
    for r in pick:
        s, o = sg.pairs.pairs[r].tolist()
        draw.line([tuple(ctr[s]), tuple(ctr[o])], fill=(255, 255, 0), width=1)
        draw.ellipse([ctr[o][0] - 2, ctr[o][1] - 2, ctr[o][0] + 2, ctr[o][1] + 2], fill=(255, 255, 0))
    font = ImageFont.load_default()
    present = sorted(set(labels.tolist()))
    legend_h = 14 * (len(present) // 3 + 2)
    out = Image.new("RGB", (canvas.width * 2, canvas.height + legend_h), (255, 255, 255))
    out.paste(side, (0, 0))
    out.paste(canvas, (canvas.width, 0))
    ld = ImageDraw.Draw(out)
    for n, k in enumerate(present):
        x, y = 8 + (n % 3) * (out.width // 3), canvas.height + 4 + 14 * (n // 3)
        ld.rectangle([x, y + 2, x + 10, y + 10], fill=class_colour(k))
        ld.text((x + 14, y), f"{vocab.objects[k]} ({int((labels == k).sum())})", fill=(0, 0, 0), font=font)
    ld.text((8, out.height - 14), f"{len(labels)} objects, {len(pred)} relations ({len(np.unique(pred))} predicates); "
            f"yellow: {len(pick)} relation lines subject->object", fill=(0, 0, 0), font=font)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"wrote {args.out}: {len(labels)} objects, {len(pred)} relations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
