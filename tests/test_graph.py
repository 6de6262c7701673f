"""The dependency graph's layout by topological level (pure: no database)."""

from __future__ import annotations

from tview_tui import graph
from tview_tui.catalog import Dependency

BLOG = [  # tview, source, lineage: the demo's shape, one edge made full
    ("tv_company", "tb_company", "root"), ("tv_user", "tb_user", "root"), ("tv_user", "tv_company", "fk"),
    ("tv_comment", "tb_comment", "root"), ("tv_comment", "tv_user", "fk"), ("tv_post", "tb_comment", "child"),
    ("tv_post", "tb_post", "root"), ("tv_post", "tv_comment", "child"), ("tv_post", "tv_user", "full"),
    ("tv_post_card", "tv_post", "root"),
]


def blog() -> graph.nx.DiGraph:
    return graph.build([Dependency(f"public.{t}", f"public.{s}", "tview" if s.startswith("tv_") else "table", lin)
                        for t, s, lin in BLOG])


def test_levels_left_to_right_boxes_never_overlap():
    drawing = graph.layout(blog())
    boxes = drawing.boxes
    assert len(boxes) == 9
    levels = [boxes[f"public.{n}"].level for n in ("tb_user", "tv_company", "tv_user", "tv_comment", "tv_post",
                                                   "tv_post_card")]
    assert levels == [0, 1, 2, 3, 4, 5]
    xs = [boxes[f"public.{n}"].x for n in ("tb_user", "tv_company", "tv_user", "tv_comment", "tv_post")]
    assert xs == sorted(xs) and len(set(xs)) == 5
    for a in boxes.values():
        for b in boxes.values():
            if a is not b:
                assert not (a.x < b.x + b.width and b.x < a.x + a.width
                            and a.y < b.y + b.height and b.y < a.y + a.height), (a, b)
    assert drawing.levels()[0] == sorted(drawing.levels()[0], key=lambda n: boxes[n].y)


def test_every_edge_arrives_at_its_target_labelled_with_its_lineage():
    drawing = graph.layout(blog())
    text = drawing.text().splitlines()
    post = drawing.boxes["public.tv_post"]
    arrivals = [text[y][:post.x].rstrip() for y in range(post.y + 1, post.y + post.height - 1)]
    assert sorted(a.rsplit(" ", 1)[1] for a in arrivals) == ["child▶", "child▶", "full▶", "root▶"]
    assert "tv_post_card" in text[drawing.boxes["public.tv_post_card"].y + 1]
    assert text[post.y].startswith(" TVIEW ", post.x + 1)
    assert text[drawing.boxes["public.tb_post"].y].startswith(" table ", drawing.boxes["public.tb_post"].x + 1)
    full = [x for x, flag in enumerate(drawing.flags[next(y for y in range(post.y, post.y + post.height)
                                                          if "full▶" in text[y])]) if "full" in flag]
    assert full and max(full) == post.x - 1          # the full edge's arrival is drawn as full


def test_a_trace_lights_its_path_and_nothing_else():
    lit = {"tb_comment", "tv_comment", "tv_post", "tv_post_card"}
    drawing = graph.layout(blog(), lit)
    assert {n for n, b in drawing.boxes.items() if b.lit} == {f"public.{n}" for n in lit}
    card = drawing.boxes["public.tv_post_card"]
    assert "lit" in drawing.flags[card.y + 1][card.x - 1]          # tv_post -> tv_post_card
    company = drawing.boxes["public.tv_company"]
    assert "lit" not in drawing.flags[company.y + 1][company.x - 1]


def test_one_source_feeding_many_shares_one_line():
    edges = [Dependency(f"public.tv_item_{n:03d}", "public.tb_item", "table", "root") for n in range(50)]
    drawing = graph.layout(graph.build(edges))
    assert len(drawing.boxes) == 51
    source = drawing.boxes["public.tb_item"]
    assert drawing.width < 60                                      # one track, not fifty
    assert all(b.height == graph.BOX_ROWS + 2 for b in drawing.boxes.values()) and source.level == 0


def test_schemas_are_shown_only_when_there_are_several():
    assert graph.layout(blog()).boxes["public.tv_post"].label == "tv_post"
    mixed = graph.build([Dependency("app.tv_a", "public.tb_a", "table", "root")])
    assert graph.layout(mixed).boxes["app.tv_a"].label == "app.tv_a"
