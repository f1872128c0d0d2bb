"""Hypothesis strategies shared by the tests (trees, problems)."""

from __future__ import annotations

from hypothesis import strategies as st

from openberry.formats.openlongcot import SPECIAL_TOKENS
from openberry.records import Problem
from openberry.tree import META_ACTIONS, RATINGS, Node, Tree

# Text with the characters that tend to break formats: newlines, '<', '>', braces, unicode.
step_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from("<>{}\n\\$"),
    max_size=40,
).filter(lambda s: not any(tag in s for tag in SPECIAL_TOKENS))

finite = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def trees(draw, *, max_nodes: int = 12, format_safe: bool = False) -> Tree:
    """Random valid trees; `format_safe` restricts fields to what OpenLongCoT carries."""
    n = draw(st.integers(1, max_nodes))
    parents = [None] + [draw(st.integers(0, i - 1)) for i in range(1, n)]
    children: list[list[int]] = [[] for _ in range(n)]
    for i in range(1, n):
        children[parents[i]].append(i)
    question = draw(step_text)
    nodes = []
    for i in range(n):
        meta = "problem" if i == 0 else draw(st.sampled_from(META_ACTIONS))
        text = question if i == 0 else draw(step_text)
        rating = draw(st.sampled_from(RATINGS))
        if format_safe:
            nodes.append(
                Node(i, parents[i], tuple(children[i]), text, meta, rating=rating)  # type: ignore[arg-type]
            )
            continue
        nodes.append(
            Node(
                id=i,
                parent=parents[i],
                children=tuple(children[i]),
                text=text,
                meta_action=draw(st.none() | st.just(meta)),  # type: ignore[arg-type]
                prior=draw(st.none() | finite),
                visits=draw(st.integers(0, 1000)),
                value=draw(st.none() | finite),
                rewards=tuple(draw(st.lists(st.floats(-100, 100), max_size=4))),
                rating=draw(st.none() | st.just(rating)),  # type: ignore[arg-type]
                prompt_tokens=draw(st.integers(0, 10_000)),
                generated_tokens=draw(st.integers(0, 10_000)),
                terminal=draw(st.booleans()),
                answer=draw(st.none() | step_text),
                info=draw(
                    st.dictionaries(
                        st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=2
                    )
                ),
            )
        )
    problem = Problem(id=draw(st.text(min_size=1, max_size=10)), question=question, source="test")
    leaf = draw(st.sampled_from([i for i in range(n) if not children[i]]))
    chosen = [leaf]
    while parents[chosen[-1]] is not None:
        chosen.append(parents[chosen[-1]])
    return Tree(
        problem=problem,
        nodes=tuple(nodes),
        method=draw(st.sampled_from(["", "mctsr", "meta-mcts"])),
        chosen=tuple(reversed(chosen)) if draw(st.booleans()) else (),
        info={"seed": draw(st.integers(0, 2**31))},
    )
