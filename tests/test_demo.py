"""The pin-board demo, quick mode: PinSage's related pins come from the query's topic."""
import json

from pinsage.cli import main
from pinsage.demo import run_demo


def test_run_demo_quick():
    lines: list[str] = []
    result = run_demo(quick=True, seed=0, out=lines.append, progress=False)
    text = "\n".join(lines)
    chance = result["chance"]
    by_method = {r["method"]: r for r in result["results"]}
    assert set(by_method) >= {"PinSage", "random-walk counts", "item-kNN"}
    ps = by_method["PinSage"]["same_topic_at_10"]
    assert ps > 3 * chance, (ps, chance)
    for r in result["results"]:
        assert 0.0 <= r["same_topic_at_10"] <= 1.0 and r["time_s"] >= 0.0
    # the summary table and the examples are printed
    assert result["summary"] in text
    assert "same-topic@10" in text and "PinSage" in text and "item-kNN" in text
    assert "random-walk counts" in text and "top-5" in text
    assert len(result["queries"]) >= 1 and len(result["queries"][0]["neighbours"]) == 5
    json.dumps(result, default=str)  # serialisable for --json


def test_demo_command_parser():
    from pinsage.cli import build_parser

    args = build_parser().parse_args(["demo", "--quick", "--seed", "3", "--json", "x.json"])
    assert args.quick and args.seed == 3 and args.json == "x.json" and callable(args.func)
    assert main(["demo", "--topics", "1"]) == 2  # user error, one line, exit status 2
