"""Figures of segments over time (pure functions): nodes and links from transitions, names as plain text."""
from __future__ import annotations

from core.insight.migration import transition_table
from dashboard.figures.migration import migration_sankey, sizes_figure, value_figure

NAMES = ["<b>Loyal</b>", "At risk"]
RUN = {
    "dates": ["2024-01-31", "2024-02-29", "2024-03-31"],
    "segments": [{"segment": 0, "name": NAMES[0]}, {"segment": 1, "name": NAMES[1]}],
    "snapshots": [
        {"date": "2024-01-31", "customers": 3, "sizes": {"0": 3, "1": 0}, "shares": {"0": 1.0, "1": 0.0},
         "value": {"0": 30.0, "1": 0.0}, "period_value": {"0": 30.0, "1": 0.0}},
        {"date": "2024-02-29", "customers": 4, "sizes": {"0": 2, "1": 2}, "shares": {"0": 0.5, "1": 0.5},
         "value": {"0": 40.0, "1": 5.0}, "period_value": {"0": 10.0, "1": 5.0}},
        {"date": "2024-03-31", "customers": 4, "sizes": {"0": 1, "1": 3}, "shares": {"0": 0.25, "1": 0.75},
         "value": {"0": 41.0, "1": 5.0}, "period_value": {"0": 1.0, "1": 0.0}},
    ],
    "transitions": [
        {"from_date": "2024-01-31", "to_date": "2024-02-29", "from": 0, "to": 0, "customers": 2},
        {"from_date": "2024-01-31", "to_date": "2024-02-29", "from": 0, "to": 1, "customers": 1},
        {"from_date": "2024-01-31", "to_date": "2024-02-29", "from": "new", "to": 1, "customers": 1},
        {"from_date": "2024-02-29", "to_date": "2024-03-31", "from": 0, "to": 0, "customers": 1},
        {"from_date": "2024-02-29", "to_date": "2024-03-31", "from": 0, "to": 1, "customers": 1},
        {"from_date": "2024-02-29", "to_date": "2024-03-31", "from": 1, "to": 1, "customers": 2},
    ],
}


def test_sankey_has_one_link_per_transition_and_plain_names():
    fig = migration_sankey(RUN, NAMES)
    sankey = fig.data[0]
    assert list(sankey.link.value) == [2, 1, 1, 1, 1, 2]
    assert "new" in sankey.node.label
    assert [a.text for a in fig.layout.annotations] == RUN["dates"]
    legend = [t.name for t in fig.data[1:]]
    assert legend == ["0 · &lt;b&gt;Loyal&lt;/b&gt;", "1 · At risk"]
    assert all("<b>" not in str(h) for h in sankey.node.customdata)
    assert migration_sankey(RUN, NAMES, max_snapshots=2).layout.annotations[0].text == "2024-02-29"


def test_sizes_and_value_follow_the_snapshots():
    sizes = sizes_figure(RUN, NAMES)
    assert [list(t.y) for t in sizes.data] == [[3, 2, 1], [0, 2, 3]]
    value = value_figure(RUN, NAMES)
    assert [list(t.y) for t in value.data] == [[30.0, 10.0, 1.0], [0.0, 5.0, 0.0]]
    one = dict(RUN, snapshots=RUN["snapshots"][:1], transitions=[])
    assert "at least two snapshots" in migration_sankey(one, NAMES).layout.annotations[0].text


def test_transition_table_rows_new_and_totals():
    table = transition_table(RUN, "2024-01-31", "2024-02-29")
    assert table.loc[0].tolist() == [2, 1, 3]
    assert table.loc["new"].tolist() == [0, 1, 1]
    assert table.loc["total"].tolist() == [2, 2, 4]
