"""The FDA views laid out by Graphviz: no two labels overlap, no edge runs through a box, every model element is
drawn; without Graphviz the views are still produced (simple layout, with a warning)."""

from __future__ import annotations

import re
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest

from septum.compliance import views
from septum.compliance.views import View, VNode, all_views, svg
from septum.model.schema import Model

NS = "{http://www.w3.org/2000/svg}"
Box = tuple[float, float, float, float]  # x, y, width, height


def _needs_dot() -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' is not installed (apt-get install graphviz; `make test` does it as root): "
                    "cannot check the Graphviz layout")


def _text_box(t: ET.Element) -> Box:
    # from the SVG alone: a sans-serif glyph is at most ~0.6 em wide on average; the box spans the em height
    size = float(t.get("font-size") or 11)
    width = len(t.text or "") * size * 0.6
    x, y = float(t.get("x", 0)), float(t.get("y", 0))
    anchor = t.get("text-anchor", "start")
    left = x - width / 2 if anchor == "middle" else x - width if anchor == "end" else x
    return left, y - size, width, size * 1.2


def _rect(r: ET.Element) -> Box:
    return tuple(float(r.get(k, 0)) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _within(inner: Box, outer: Box) -> bool:
    return (outer[0] - 0.5 <= inner[0] and inner[0] + inner[2] <= outer[0] + outer[2] + 0.5
            and outer[1] - 0.5 <= inner[1] and inner[1] + inner[3] <= outer[1] + outer[3] + 0.5)


def _curve_points(d: str) -> list[tuple[float, float]]:
    """Points along an SVG path made of M, C and L commands (what views.svg writes)."""
    nums = [tuple(map(float, xy.split(","))) for xy in re.findall(r"-?[\d.]+,-?[\d.]+", d)]
    pts: list[tuple[float, float]] = []
    cur = (0.0, 0.0)
    i = 0
    for cmd in re.findall(r"[MCL]", d):
        if cmd == "M":
            cur = nums[i]
            i += 1
            pts.append(cur)
        elif cmd == "C":
            p1, p2, p3 = nums[i:i + 3]
            i += 3
            for k in range(1, 41):
                t = k / 40
                a = 1 - t
                pts.append(tuple(a ** 3 * c + 3 * a * a * t * q + 3 * a * t * t * r + t ** 3 * s  # type: ignore[misc]
                                 for c, q, r, s in zip(cur, p1, p2, p3, strict=True)))
            cur = p3
        else:
            p = nums[i]
            i += 1
            pts += [(cur[0] + (p[0] - cur[0]) * k / 10, cur[1] + (p[1] - cur[1]) * k / 10) for k in range(1, 11)]
            cur = p
    return pts


def layout_problems(text: str) -> list[str]:
    """Overlapping labels, labels on boxes, edges through boxes they do not connect, text outside its box."""
    root = ET.fromstring(text)
    nodes: dict[str, Box] = {}
    labels: list[tuple[str, Box]] = []
    problems = []
    for g in root.iter(f"{NS}g"):
        rect = g.find(f"{NS}rect")
        if g.get("class") == "node":
            box = nodes[g.get("data-id", "")] = _rect(rect)
            for t in g.findall(f"{NS}text"):
                if not _within(_text_box(t), box):
                    problems.append(f"text {t.text!r} sticks out of its box {g.get('data-id')}")
        elif g.get("class") == "edge-label":
            (t,) = g.findall(f"{NS}text")
            labels.append((t.text or "", _text_box(t)))
    labels += [(t.text or "", _text_box(t)) for t in root.iter(f"{NS}text") if t.get("class") == "boundary-label"]
    for i, (la, a) in enumerate(labels):
        problems += [f"label {la!r} overlaps label {lb!r}" for lb, b in labels[i + 1:] if _overlap(a, b)]
        problems += [f"label {la!r} overlaps box {n}" for n, b in nodes.items() if _overlap(a, b)]
    for p in root.iter(f"{NS}path"):
        title = p.find(f"{NS}title")
        if title is None:
            continue
        src, _, rest = (title.text or "").partition(" -> ")
        dst = rest.split(" ", 1)[0]
        pts = _curve_points(p.get("d", ""))
        for n, (x, y, w, h) in nodes.items():
            if n in (src, dst):
                continue
            if any(x + 2 < px < x + w - 2 and y + 2 < py < y + h - 2 for px, py in pts):
                problems.append(f"edge {title.text} runs through box {n}")
    return problems


def test_pump_views_have_no_overlapping_labels_and_no_edge_through_a_box(pump_model: Model) -> None:
    _needs_dot()
    for v in all_views(pump_model):
        text = svg(v)
        assert 'data-layout="graphviz"' in text, v.key
        assert layout_problems(text) == [], v.key


def test_global_view_draws_every_partition_interface_role_and_channel(pump_model: Model) -> None:
    _needs_dot()
    g = next(v for v in all_views(pump_model) if v.key == "global")
    root = ET.fromstring(svg(g))
    drawn = {el.get("data-id") for el in root.iter(f"{NS}g") if el.get("class") == "node"}
    expected = ({f"partition:{p}" for p in pump_model.partitions} | {f"interface:{i}" for i in pump_model.interfaces}
                | {f"role:{r}" for r in pump_model.roles})
    assert drawn == expected
    edge_labels = [t.text for el in root.iter(f"{NS}g") if el.get("class") == "edge-label"
                   for t in el.findall(f"{NS}text")]
    assert sorted(edge_labels) == sorted(ch.name for ch in pump_model.channels)
    paths = [p.find(f"{NS}title").text for p in root.iter(f"{NS}path") if p.find(f"{NS}title") is not None]
    for ch in pump_model.channels:
        assert f"partition:{ch.src} -> partition:{ch.dst} {ch.name}" in paths


def test_the_simple_layout_is_what_the_check_catches(pump_model: Model) -> None:
    # the old hand-written layout overlaps labels on the pump's global view: the check sees it
    g = next(v for v in all_views(pump_model) if v.key == "global")
    problems = layout_problems(svg(g, engine="simple"))
    assert any("overlaps label" in p for p in problems) and any("overlaps box" in p for p in problems)


def test_names_with_dot_syntax_are_quoted() -> None:
    _needs_dot()
    v = View("t", "t", "t", nodes=[VNode("partition:a", 'a"b', "partition", 2, "none"),
                                   VNode("partition:c", "c\\", "partition", 3, "safety")],
             edges=[("partition:a", "partition:c", 'x"; n0 -> n1 [label="y'), ("partition:c", "partition:a", "")])
    text = svg(v)
    assert 'data-layout="graphviz"' in text and layout_problems(text) == []
    assert "x&quot;; n0 -&gt; n1 [label=&quot;y" in text


def test_without_dot_the_views_are_still_produced_with_a_warning(pump_model: Model, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(views, "_dot_binary", lambda: None)
    monkeypatch.setattr(views, "_warned", set())
    texts = [svg(v) for v in all_views(pump_model)]
    assert all(t.startswith("<svg") and 'data-layout="simple"' in t for t in texts)
    err = capsys.readouterr().err
    assert err.count("warning: Graphviz 'dot' not found") == 1  # once, not once per view


def test_dot_failure_falls_back(pump_model: Model, monkeypatch: pytest.MonkeyPatch, tmp_path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(views, "_dot_binary", lambda: str(fake))
    monkeypatch.setattr(views, "_warned", set())
    monkeypatch.setattr(views, "_DOT_CACHE", {})
    text = svg(all_views(pump_model)[0])
    assert 'data-layout="simple"' in text and "syntax error" in capsys.readouterr().err


def test_one_dot_process_lays_out_all_views(pump_model: Model, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    _needs_dot()
    log = tmp_path / "calls"
    wrapper = tmp_path / "dot"
    wrapper.write_text(f'#!/bin/sh\necho run >> "{log}"\nexec "{shutil.which("dot")}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(views, "_dot_binary", lambda: str(wrapper))
    monkeypatch.setattr(views, "_DOT_CACHE", {})
    vs = all_views(pump_model)
    texts = [svg(v) for v in vs]
    assert len(vs) > 5 and all('data-layout="graphviz"' in t for t in texts)
    # one process, or one more per Graphviz 2.43 crash part-way through the batch (see the next test)
    runs = log.read_text().splitlines()
    assert 1 <= len(runs) <= 2 < len(vs), runs
    assert all(layout_problems(t) == [] for t in texts)


def test_a_dot_crash_mid_batch_resumes_after_what_it_printed(pump_model: Model, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path) -> None:
    """Debian's Graphviz 2.43 segfaults on the graph after some graphs in one input: the views laid out
    before the crash are kept and the batch resumes, instead of one dot process per view."""
    _needs_dot()
    log = tmp_path / "calls"
    fake = tmp_path / "dot"
    # prints the real layout of the first graph of its input only, then dies of SIGSEGV (on its first call)
    fake.write_text(f"""#!{sys.executable}
import json, os, signal, subprocess, sys
text = sys.stdin.read()
calls = open({str(log)!r}, "a+")
calls.write("run\\n"); calls.flush(); calls.seek(0); first = len(calls.read().split()) == 1
out = subprocess.run([{shutil.which("dot")!r}, "-Tjson"], input=text, capture_output=True, text=True).stdout
if first:
    doc, _end = json.JSONDecoder().raw_decode(out.lstrip())
    sys.stdout.write(json.dumps(doc)); sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGSEGV)
sys.stdout.write(out)
""")
    fake.chmod(0o755)
    monkeypatch.setattr(views, "_dot_binary", lambda: str(fake))
    monkeypatch.setattr(views, "_DOT_CACHE", {})
    vs = all_views(pump_model)
    texts = [svg(v) for v in vs]
    assert all('data-layout="graphviz"' in t for t in texts)
    assert log.read_text().splitlines() == ["run", "run"]  # the crashed batch and its resumption, no more
