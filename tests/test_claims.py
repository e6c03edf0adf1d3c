import pytest

from subgroup_values.core.claims import Claim, read_claims, replace_block, write_claims


def test_claims_round_trip_and_refuse_non_finite_or_repeated(tmp_path):
    c = Claim(id="headroom.disjoint.all", topic="headroom", statistic="TV", sentence="TV is 0.1.",
              estimate=0.1, lo=0.05, hi=0.15, protocol="disjoint")
    p = write_claims([c], tmp_path / "c.json")
    assert read_claims(p) == [c]
    with pytest.raises(ValueError, match="finite"):
        Claim(id="x", topic="t", statistic="s", sentence="s.", estimate=float("nan"))
    with pytest.raises(ValueError, match="protocol"):
        Claim(id="x", topic="t", statistic="s", sentence="s.", protocol="leaky")
    with pytest.raises(ValueError, match="unique"):
        write_claims([c, c], tmp_path / "d.json")


def test_replace_block_needs_its_markers_once():
    text = "a\n<!-- claims:x:begin -->\nold\n<!-- claims:x:end -->\nb"
    assert replace_block(text, "x", "new") == "a\n<!-- claims:x:begin -->\nnew\n<!-- claims:x:end -->\nb"
    with pytest.raises(ValueError, match="markers"):
        replace_block("no markers", "x", "new")


def test_a_pattern_selects_every_matching_claim_in_file_order_and_must_match_one():
    from subgroup_values.core.claims import select

    cs = {i: Claim(id=i, topic="t", statistic="s", sentence=f"{i}.") for i in
          ("t.gap.b", "t.gap.a", "t.gap.a.matched", "t.floor")}
    assert [c.id for c in select(cs, ["t.floor", "t.gap.*"])] == ["t.floor", "t.gap.b", "t.gap.a", "t.gap.a.matched"]
    assert [c.id for c in select(cs, ["t.*.a"])] == ["t.gap.a"]
    with pytest.raises(KeyError, match="nothing"):
        select(cs, ["t.nothing.*"])
