"""Prioritized replay: sum tree against brute force, sampling law, weights, schedule, ring,
persistence, errors. Every expectation is computed in closed form from the inputs."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from openberry.errors import BerryError
from openberry.training.rl import replay as replay_module
from openberry.training.rl.replay import PrioritizedReplay, ReplayConfig, ReplayError, SumTree

CAPACITIES = [1, 2, 3, 5, 7, 8, 13, 100]


def _tree(priorities: np.ndarray) -> SumTree:
    tree = SumTree(len(priorities))
    for index, priority in enumerate(priorities):
        tree.update(index, float(priority))
    return tree


def _filled(errors: list[float], **config: float) -> PrioritizedReplay:
    buffer = PrioritizedReplay(ReplayConfig(capacity=max(1, len(errors)), **config))
    indices = [buffer.add({"k": i}) for i in range(len(errors))]
    buffer.update_priorities(indices, errors)
    return buffer


# --- sum tree ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_sum_tree_total_get_max_and_find_match_brute_force_on_integers(capacity: int) -> None:
    rng = np.random.default_rng(capacity)
    priorities = rng.integers(0, 10, size=capacity).astype(float)
    priorities[0] = max(priorities[0], 1.0)  # a positive total
    tree = _tree(priorities)
    assert tree.total == priorities.sum()
    assert tree.max == priorities.max()
    assert [tree.get(i) for i in range(capacity)] == priorities.tolist()
    cumsum = np.cumsum(priorities)
    # Integers and halves are exact in binary, so boundaries (prefix sums) are tested exactly.
    for mass in np.arange(0.0, tree.total, 0.5):
        assert tree.find(mass) == int(np.searchsorted(cumsum, mass, side="right")), mass


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_sum_tree_find_matches_brute_force_on_random_floats(capacity: int) -> None:
    rng = np.random.default_rng(1000 + capacity)
    priorities = rng.random(capacity) * rng.choice([0.0, 1.0, 5.0], size=capacity)
    priorities[-1] += 0.5
    tree = _tree(priorities)
    assert tree.total == pytest.approx(priorities.sum(), rel=1e-12)
    cumsum = np.cumsum(priorities)
    for mass in rng.random(200) * priorities.sum():
        found = tree.find(mass)
        assert found == int(np.searchsorted(cumsum, mass, side="right"))
        assert priorities[found] > 0


def test_sum_tree_max_follows_decreases_and_find_skips_zero_leaves() -> None:
    tree = _tree(np.array([0.0, 3.0, 0.0, 7.0, 0.0]))
    assert tree.max == 7.0
    tree.update(3, 1.0)
    assert tree.max == 3.0 and tree.total == 4.0
    tree.update(1, 0.0)
    assert tree.max == 1.0
    # Only leaf 3 is positive: every mass, even at or past the total, lands on it.
    assert {tree.find(m) for m in (0.0, 0.5, 0.999, 1.0, 2.0)} == {3}


def test_sum_tree_rejects_bad_input() -> None:
    with pytest.raises(ReplayError):
        SumTree(0)
    tree = SumTree(3)
    with pytest.raises(ReplayError):
        tree.find(0.0)  # total 0
    for index, priority in [(3, 1.0), (-1, 1.0), (0, -1.0), (0, math.nan), (0, math.inf)]:
        with pytest.raises(ReplayError):
            tree.update(index, priority)
    tree.update(0, 1.0)
    with pytest.raises(ReplayError):
        tree.find(-0.1)


# --- sampling law and weights -----------------------------------------------------------------


def test_sampling_frequencies_follow_p_to_the_alpha() -> None:
    errors = [0.1, 0.5, 1.0, 2.0, 4.0]
    buffer = _filled(errors, alpha=0.6, eps=1e-6)
    powered = (np.array(errors) + 1e-6) ** 0.6
    expected = powered / powered.sum()
    rng = np.random.default_rng(0)
    counts = np.zeros(len(errors))
    for _ in range(4000):
        indices, _, _ = buffer.sample(8, rng)
        np.add.at(counts, indices, 1)
    assert np.abs(counts / counts.sum() - expected).max() < 0.01


def test_sampling_is_stratified_one_draw_per_segment() -> None:
    # Equal priorities: segment j of the total mass is exactly item j's mass.
    buffer = PrioritizedReplay(ReplayConfig(capacity=6))
    for i in range(6):
        buffer.add({"k": i})
    rng = np.random.default_rng(3)
    for _ in range(50):
        indices, items, _ = buffer.sample(6, rng)
        assert indices == list(range(6))
        assert [item["k"] for item in items] == list(range(6))


def test_weights_are_n_p_to_the_minus_beta_over_the_batch_max() -> None:
    errors = [0.2, 1.0, 3.0, 0.05]
    alpha, eps = 0.7, 1e-3
    buffer = _filled(errors, alpha=alpha, eps=eps, beta_start=0.4, beta_steps=10)
    for _ in range(3):
        buffer.step()
    beta = 0.4 + 3 * 0.6 / 10
    assert buffer.beta == pytest.approx(beta, abs=1e-15)
    powered = (np.abs(errors) + eps) ** alpha
    probs = powered / powered.sum()
    indices, _, weights = buffer.sample(6, np.random.default_rng(11))
    raw = (len(errors) * probs[indices]) ** -beta
    np.testing.assert_allclose(weights, raw / raw.max(), rtol=1e-12)
    assert max(weights) == 1.0
    assert all(isinstance(w, float) for w in weights)


def test_beta_anneals_linearly_to_exactly_one_and_stays() -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=1, beta_start=0.3, beta_steps=7))
    seen = [buffer.beta]
    for _ in range(12):
        buffer.step()
        seen.append(buffer.beta)
    for t in range(7):
        assert seen[t] == pytest.approx(0.3 + t * 0.7 / 7, abs=1e-15)
    assert np.all(np.diff(seen[:8]) > 0)
    assert seen[7:] == [1.0] * 6
    assert buffer.steps == 12
    assert PrioritizedReplay(ReplayConfig(beta_start=1.0)).beta == 1.0


# --- priorities and the ring ------------------------------------------------------------------


def test_new_items_get_the_running_max_priority() -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=10, eps=0.01))
    assert buffer.add({"k": 0}) == 0
    assert buffer.priority(0) == 1.0 == buffer.max_priority
    buffer.update_priorities([0], [-5.0])
    assert buffer.priority(0) == 5.01
    assert buffer.priority(buffer.add({"k": 1})) == 5.01
    # The max is a running max (the paper's max over the past): lowering priorities keeps it.
    buffer.update_priorities([0, 1], [0.5, 0.25])
    assert buffer.max_priority == 5.01
    assert buffer.priority(buffer.add({"k": 2})) == 5.01
    assert buffer.priority(0) == 0.51 and buffer.priority(1) == 0.26


def test_ring_overwrites_the_oldest_once_full() -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=3))
    slots = [buffer.add({"k": i}) for i in range(5)]
    assert slots == [0, 1, 2, 0, 1]
    assert len(buffer) == 3
    state = buffer.state_dict()
    assert state["size"] == 3 and state["position"] == 2
    assert sorted(item["k"] for item in state["items"]) == [2, 3, 4]
    rng = np.random.default_rng(5)
    sampled = {item["k"] for _ in range(100) for item in buffer.sample(4, rng)[1]}
    assert sampled == {2, 3, 4}


def test_update_priorities_changes_sampling() -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=2, alpha=1.0, eps=1e-6))
    buffer.add({"k": 0})
    buffer.add({"k": 1})
    rng = np.random.default_rng(9)
    before = [buffer.sample(1, rng)[0][0] for _ in range(2000)]
    assert abs(np.mean(before) - 0.5) < 0.05
    buffer.update_priorities([0, 1], [0.0, 100.0])
    after = [buffer.sample(1, rng)[0][0] for _ in range(2000)]
    assert after.count(0) <= 2  # P(0) = 1e-6 / (100 + 2e-6)


def test_keep_drops_items_and_keeps_the_others_priorities_and_order() -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=8, alpha=1.0, eps=1e-9))
    slots = [buffer.add({"k": i, "round": i // 2}) for i in range(6)]
    buffer.update_priorities(slots, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    buffer.step()
    assert buffer.keep(lambda item: item["round"] >= 1) == 2
    assert len(buffer) == 4 and buffer.steps == 1
    assert buffer.max_priority == pytest.approx(6.0)
    assert [buffer.priority(i) for i in range(4)] == pytest.approx([3.0, 4.0, 5.0, 6.0])
    assert [item["k"] for item in buffer.state_dict()["items"]] == [2, 3, 4, 5]
    rng = np.random.default_rng(3)
    drawn = [item["k"] for _ in range(3000) for item in buffer.sample(1, rng)[1]]
    assert set(drawn) == {2, 3, 4, 5}
    assert abs(drawn.count(5) / len(drawn) - 6 / 18) < 0.03  # P = p / sum p over the kept
    assert buffer.add({"k": 6, "round": 3}) == 4  # the next free slot
    assert buffer.keep(lambda item: True) == 0


def test_keep_on_a_full_ring_keeps_oldest_first() -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=3))
    for i in range(5):
        buffer.add({"k": i})  # the ring holds 3, 4, 2 in slots 0, 1, 2
    assert buffer.keep(lambda item: item["k"] != 3) == 1
    assert [item["k"] for item in buffer.state_dict()["items"]] == [2, 4]
    assert buffer.add({"k": 5}) == 2
    assert buffer.keep(lambda item: False) == 3 and len(buffer) == 0


# --- persistence ------------------------------------------------------------------------------


def _busy_buffer() -> PrioritizedReplay:
    buffer = PrioritizedReplay(ReplayConfig(capacity=5, alpha=0.5, beta_steps=4))
    for i in range(7):
        buffer.add({"k": i, "text": f"step {i}", "nested": {"v": [i, i / 3]}})
    buffer.update_priorities([0, 2, 4], [0.3, -2.0, 1e-9])
    buffer.update_priorities([2], [0.1])  # the running max (2 + eps) is no slot's priority now
    buffer.step()
    return buffer


def test_save_load_round_trip_gives_identical_samples(tmp_path: Path) -> None:
    original = _busy_buffer()
    path = original.save(tmp_path / "sub" / "replay.json")
    assert json.loads(path.read_text(encoding="utf-8"))["size"] == 5  # valid JSON
    assert [p.name for p in path.parent.iterdir()] == ["replay.json"]  # no temp file left
    loaded = PrioritizedReplay.load(path)
    assert loaded.state_dict() == original.state_dict()
    assert len(loaded) == 5 and loaded.beta == original.beta
    rng_a, rng_b = np.random.default_rng(21), np.random.default_rng(21)
    for batch in (1, 3, 8):
        assert original.sample(batch, rng_a) == loaded.sample(batch, rng_b)
    for buffer in (original, loaded):
        buffer.add({"k": 99})
        buffer.update_priorities([1], [7.0])
        buffer.step()
    assert original.sample(16, rng_a) == loaded.sample(16, rng_b)


def test_state_dict_is_plain_json() -> None:
    state = _busy_buffer().state_dict()
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert state["config"] == {
        "capacity": 5,
        "alpha": 0.5,
        "beta_start": 0.4,
        "beta_steps": 4,
        "eps": 1e-6,
    }
    assert state["step"] == 1 and len(state["priorities"]) == 5


def test_load_rejects_bad_files_and_states(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ReplayError):
        PrioritizedReplay.load(bad)
    with pytest.raises(ReplayError):
        PrioritizedReplay.load(tmp_path / "missing.json")
    state = _busy_buffer().state_dict()
    for key, value in [("size", 4), ("priorities", [1.0] * 4 + [-1.0]), ("position", 9)]:
        with pytest.raises(ReplayError):
            PrioritizedReplay.from_state({**state, key: value})
    with pytest.raises(ReplayError):
        PrioritizedReplay.from_state({k: v for k, v in state.items() if k != "items"})


def test_save_rejects_items_json_cannot_hold(tmp_path: Path) -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=2))
    buffer.add({"x": {1, 2}})
    with pytest.raises(ReplayError):
        buffer.save(tmp_path / "replay.json")
    assert not (tmp_path / "replay.json").exists()


# --- errors and module rules ------------------------------------------------------------------


def test_sampling_errors() -> None:
    buffer = PrioritizedReplay(ReplayConfig(capacity=4))
    with pytest.raises(ReplayError, match="empty"):
        buffer.sample(1, np.random.default_rng(0))
    buffer.add({"k": 0})
    for batch_size in (0, -1, 2.5, True, "3"):
        with pytest.raises(ReplayError):
            buffer.sample(batch_size, np.random.default_rng(0))  # type: ignore[arg-type]


def test_priority_update_errors_change_nothing() -> None:
    buffer = _filled([1.0, 2.0])
    before = buffer.state_dict()
    for indices, errors in [
        ([0, 1], [0.5, math.nan]),
        ([0], [math.inf]),
        ([0], [-math.inf]),
        ([0, 1], [1.0]),
        ([0, 2], [1.0, 1.0]),
    ]:
        with pytest.raises(ReplayError):
            buffer.update_priorities(indices, errors)
    assert buffer.state_dict() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity": 0},
        {"capacity": 2.0},
        {"alpha": -0.1},
        {"alpha": math.nan},
        {"beta_start": -0.01},
        {"beta_start": 1.5},
        {"beta_steps": 0},
        {"eps": 0.0},
        {"eps": -1e-6},
        {"eps": math.inf},
    ],
)
def test_bad_config_raises(kwargs: dict[str, float]) -> None:
    with pytest.raises(ReplayError) as info:
        ReplayConfig(**kwargs)
    assert isinstance(info.value, BerryError) and isinstance(info.value, ValueError)


def test_module_imports_neither_torch_nor_pickle() -> None:
    tree = ast.parse(Path(replay_module.__file__).read_text(encoding="utf-8"))
    names = {
        alias.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import)
        for alias in n.names
    }
    names |= {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    assert not names & {"torch", "pickle", "cPickle", "dill"}
