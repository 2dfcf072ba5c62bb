"""The fingerprint changes with anything that changes what is sent or when."""

import dataclasses
import itertools

from loadgen.fingerprint import fingerprint
from loadgen.lengths import Fixed, Uniform
from loadgen.workload import SyntheticWorkload

SPECS = list(itertools.islice(SyntheticWorkload(Uniform(5, 50), Uniform(5, 50)).specs(), 50))
OFFSETS = [i * 1000 for i in range(50)]


def test_equal_inputs_equal_fingerprint():
    again = list(itertools.islice(SyntheticWorkload(Uniform(5, 50), Uniform(5, 50)).specs(), 50))
    assert fingerprint(SPECS, OFFSETS) == fingerprint(again, list(OFFSETS))
    assert len(fingerprint(SPECS, OFFSETS)) == 64


def test_any_change_changes_the_fingerprint():
    base = fingerprint(SPECS, OFFSETS)
    changed_text = [dataclasses.replace(SPECS[0], messages=({"role": "user", "content": "x"},))]
    changed_len = [dataclasses.replace(SPECS[0], max_tokens=SPECS[0].max_tokens + 1)]
    variants = [
        fingerprint(changed_text + SPECS[1:], OFFSETS),
        fingerprint(changed_len + SPECS[1:], OFFSETS),
        fingerprint(SPECS, OFFSETS[:-1] + [OFFSETS[-1] + 1]),
        fingerprint(SPECS, None),
        fingerprint(SPECS[:-1], OFFSETS),
        fingerprint(list(itertools.islice(SyntheticWorkload(Fixed(5), Fixed(5)).specs(), 50))),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_the_salt_is_left_out_so_two_salted_runs_match_and_an_unsalted_one_does_not():
    from loadgen.workload import salt_specs

    def salted(salt):
        return list(salt_specs(iter(SPECS), salt))

    one, two = salted("river moon stone ship"), salted("plane tree bird fire")
    assert one != two  # what is sent differs...
    assert fingerprint(one, OFFSETS) == fingerprint(two, OFFSETS)  # ...the workload does not
    assert fingerprint(one, OFFSETS) != fingerprint(SPECS, OFFSETS)
    # The salt hides nothing else: a change after it still changes the fingerprint.
    changed = [dataclasses.replace(one[0], max_tokens=one[0].max_tokens + 1), *one[1:]]
    assert fingerprint(changed, OFFSETS) != fingerprint(one, OFFSETS)
