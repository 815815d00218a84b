#!/usr/bin/env python3
"""Prompt sets for the drift tests (drift.sh, serve_drift.sh), from word grids:

    topic_prompts.py DIR

writes DIR/ref.txt (40 fire sentences: the reference sample), DIR/fire.txt and
DIR/fire.jsonl (40 other fire sentences, as lines and as {"prompt": ...}
objects: no shift) and DIR/cook.txt (40 cooking sentences: a topic shift).
The reference and the no-shift set are two disjoint draws from one grid;
the draws are seeded, so every run writes the same files."""
import itertools
import json
import random
import sys

FIRE = ["%s %s%s" % p for p in itertools.product(
    ["The fire", "A house fire", "The forest fire", "The kitchen fire", "A warehouse fire"],
    ["spread to the roof", "trapped two people upstairs", "was reported by a neighbour",
     "blocked the main exit", "filled the hallway with smoke", "reached the gas tank",
     "burned through the night", "forced the school to evacuate"],
    ["; call the fire brigade.", "; leave the building now.", "; the firefighters are on their way."])]
COOK = ["%s %s%s" % p for p in itertools.product(
    ["The soup", "A chocolate cake", "The pasta sauce", "The roast chicken", "A loaf of bread"],
    ["needs more salt and pepper", "should bake for forty minutes", "tastes better with fresh basil",
     "was stirred with a wooden spoon", "rests before it is sliced", "simmers on a low heat",
     "is served with warm butter", "needs a cup of flour and two eggs"],
    ["; enjoy the meal.", "; serve it hot.", "; the guests are hungry."])]


def main():
    d = sys.argv[1]
    fire, cook = list(FIRE), list(COOK)
    rng = random.Random(7)
    rng.shuffle(fire)
    rng.shuffle(cook)
    with open(d + "/ref.txt", "w") as f:
        f.writelines(t + "\n" for t in fire[:40])
    with open(d + "/fire.txt", "w") as f:
        f.writelines(t + "\n" for t in fire[40:80])
    with open(d + "/fire.jsonl", "w") as f:
        f.writelines(json.dumps({"prompt": t}) + "\n" for t in fire[40:80])
    with open(d + "/cook.txt", "w") as f:
        f.writelines(t + "\n" for t in cook[:40])


if __name__ == "__main__":
    main()
