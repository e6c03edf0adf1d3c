import pytest

from subgroup_values.core.claims import Claim, read_claims, replace_block, same_claims, write_claims


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


def test_claims_from_another_summation_order_are_the_same_bytes(tmp_path):
    """A rerun on another machine differs in the last bits of a float (0.35994328949030724 vs 0.3599432894903072):
    the claims are equal at the tables' tolerance, the file is written rounded and left byte for byte."""
    def claim(x, extra):
        return Claim(id="a.b", topic="a", statistic="s", sentence="s.", estimate=x, lo=x / 2, hi=x * 2,
                     extra={"sd": extra, "rows": [extra, 1]})

    here, there = claim(0.35994328949030724, 0.022381083490665008), claim(0.3599432894903072, 0.022381083490665)
    assert same_claims([here], [there]) and here == there  # rounded at 12 significant digits when made
    p = write_claims([here], tmp_path / "c.json")
    before = p.read_bytes()
    assert b"0.35994328949" in before and b"030724" not in before
    write_claims([there], p)
    assert p.read_bytes() == before
    other = claim(0.3599433, 0.022381083490665)  # a real difference is one
    assert not same_claims([here], [other])
    write_claims([other], p)
    assert read_claims(p) == [other]


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
