"""The span grouping written the way TRL's GOLD trainer and tokenkit write it: a Python two-pointer walk.

This is the anchor the span-engine benchmark compares against, and a behavioural oracle in the tests. It walks
both token lists in text order and keeps extending the current group while the next token (of either side)
starts before the group's end. It equals the bipartite-component grouping whenever each side covers every
character the other side covers (true for byte-level BPE and SentencePiece pairs); it differs only where one
tokenizer drops characters (BERT drops whitespace), because it then also joins same-side tokens that overlap
each other but no token of the other side.
"""

from __future__ import annotations


def two_pointer_groups(t_starts, t_ends, s_starts, s_ends) -> list[tuple[list[int], list[int]]]:
    """Groups of two sorted span lists (non-special, non-empty tokens), as (teacher positions, student positions)."""
    n, m = len(t_starts), len(s_starts)
    groups = []
    i = j = 0
    while i < n or j < m:
        teacher, student = [], []
        if i < n and (j >= m or t_starts[i] <= s_starts[j]):
            teacher.append(i)
            end = t_ends[i]
            i += 1
        else:
            student.append(j)
            end = s_ends[j]
            j += 1
        while True:
            if i < n and t_starts[i] < end:
                teacher.append(i)
                end = max(end, t_ends[i])
                i += 1
            elif j < m and s_starts[j] < end:
                student.append(j)
                end = max(end, s_ends[j])
                j += 1
            else:
                break
        groups.append((teacher, student))
    return groups
