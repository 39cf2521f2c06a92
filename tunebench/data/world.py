"""The synthetic image world of the embedded study.

Scenes hold 1-3 objects on a 3x3 grid; each object has a distinct shape and colour and is big or
small. Upstream tasks (what the base model is pretrained on) ask about colour and count and
caption the scene; size is never named upstream. Downstream tasks shift in the three ways the
paper's do: a new visual concept (size), a new question type (a count threshold) and a new answer
format (counts as option letters), answered with words the base model already uses (colours,
letters, yes/no) so that the gain E measures a skill rather than a new answer vocabulary.

Everything is a pure function of a seed, so a dataset is reproduced exactly from its config.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Callable

from PIL import Image, ImageDraw

IMAGE_SIZE = 48
GRID = 3
SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
}
# Extra human answers for VQA references: soft accuracy needs >= 3 matching annotators for full credit.
SYNONYMS = {
    "red": "crimson",
    "green": "lime",
    "blue": "navy",
    "yellow": "gold",
    "purple": "violet",
    "orange": "amber",
}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
LETTERS = "ABCDEFGH"
CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
SHORT_INSTRUCTION = "Answer the question using a single word or phrase."
CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    row: int
    col: int
    big: bool


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]

    def left_to_right(self) -> list[Obj]:
        return sorted(self.objects, key=lambda o: (o.col, o.row))


def random_scene(rng: random.Random, n_min: int = 1, n_max: int = 3, one_big: bool = False,
                 any_big: bool | None = None) -> Scene:
    """A scene with distinct shapes and colours. one_big: exactly one object is big (size tasks);
    any_big: whether at least one object is big (None: each object big with probability 1/2)."""
    n = rng.randint(n_min, n_max)
    shapes = rng.sample(SHAPES, n)
    colours = rng.sample(list(COLOURS), n)
    cells = rng.sample(range(GRID * GRID), n)
    if one_big:
        big_index = rng.randrange(n)
        sizes = [i == big_index for i in range(n)]
    else:
        sizes = [any_big is not False and rng.random() < 0.5 for _ in range(n)]
        if any_big and not any(sizes):
            sizes[rng.randrange(n)] = True
    objects = tuple(
        Obj(s, c, cell // GRID, cell % GRID, big) for s, c, cell, big in zip(shapes, colours, cells, sizes)
    )
    return Scene(objects)


def render(scene: Scene, rng: random.Random) -> bytes:
    """PNG bytes. Positions jitter inside their cell and the background varies, so pixels are not a lookup table."""
    grey = rng.randint(225, 250)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    cell = IMAGE_SIZE // GRID
    for o in scene.objects:
        # Small shapes stay >= 9 px across: smaller, circle/square/triangle blur together at 16 px
        # patches and the model cannot bind a shape word to its object.
        radius = rng.uniform(6.75, 7.5) if o.big else rng.uniform(4.5, 5.0)
        slack = cell / 2 - radius
        cx = o.col * cell + cell / 2 + rng.uniform(-slack, slack) * 0.5
        cy = o.row * cell + cell / 2 + rng.uniform(-slack, slack) * 0.5
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        fill = COLOURS[o.colour]
        if o.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif o.shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---- tasks: each turns one scene into one or more questions ------------------------------------

@dataclass(frozen=True)
class Question:
    question: str
    answers: list[str]
    choices: list[str]
    category: str = ""


def _vqa_refs(answer: str, rng: random.Random, synonym: str | None) -> list[str]:
    """Ten 'human' answers: mostly the canonical word, some a synonym or a spelled-out number."""
    n_other = rng.choice([0, 1, 2, 3]) if synonym else 0
    refs = [answer] * (10 - n_other) + [synonym] * n_other
    rng.shuffle(refs)
    return refs


def _choice_question(stem: str, options: list[str], gold: str) -> Question:
    """Options in a fixed order: a model this small does not learn to bind shuffled letters
    to options within the embedded study's budget, so the letter names the option's content."""
    lines = [stem] + [f"{LETTERS[i]}. {text}" for i, text in enumerate(options)] + [CHOICE_INSTRUCTION]
    return Question("\n".join(lines), [LETTERS[options.index(gold)]], options)


def ask_attribute(scene: Scene, rng: random.Random) -> list[Question]:
    """Short-answer VQA: the colour of a named shape, or how many shapes there are."""
    if rng.random() < 0.35:
        n = len(scene.objects)
        return [Question(f"How many shapes are there?\n{SHORT_INSTRUCTION}",
                         _vqa_refs(str(n), rng, NUMBER_WORDS[n]), [], "count")]
    o = rng.choice(scene.objects)
    return [Question(f"What color is the {o.shape}?\n{SHORT_INSTRUCTION}",
                     _vqa_refs(o.colour, rng, SYNONYMS[o.colour]), [], "color")]


def _complementary_pair(statement: str, negation: str, true: bool, category: str,
                        rng: random.Random) -> list[Question]:
    """MME-style pair about one image: a yes/no question and its negation, in random order,
    so exactly one answer is yes."""
    suffix = "Please answer yes or no."
    pair = [Question(f"{statement} {suffix}", ["yes" if true else "no"], [], category),
            Question(f"{negation} {suffix}", ["no" if true else "yes"], [], category)]
    rng.shuffle(pair)
    return pair


def ask_count_pair(scene: Scene, rng: random.Random) -> list[Question]:
    """'Is there only one shape?' and 'Is there more than one shape?'."""
    return _complementary_pair("Is there only one shape?", "Is there more than one shape?",
                               len(scene.objects) == 1, "count", rng)


def ask_colour_choice(scene: Scene, rng: random.Random) -> list[Question]:
    """Multiple choice: the colour of the named shape, among all colours."""
    o = rng.choice(scene.objects)
    return [_choice_question(f"Which color is the {o.shape}?", list(COLOURS), o.colour)]


def describe(scene: Scene) -> list[str]:
    """Reference captions: the objects left to right, in a few phrasings."""
    names = [f"a {o.colour} {o.shape}" for o in scene.left_to_right()]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    n = len(names)
    count = f"{NUMBER_WORDS[n]} shape" + ("s" if n > 1 else "")
    return [
        f"{listed}.",
        f"an image of {listed}.",
        f"{count}: {listed}.",
        f"there is {listed}." if n == 1 else f"there are {listed}.",
        f"a picture showing {listed}.",
    ]


def ask_caption(scene: Scene, rng: random.Random) -> list[Question]:
    return [Question(CAPTION_PROMPT, describe(scene), [], "caption")]


def ask_big_colour(scene: Scene, rng: random.Random) -> list[Question]:
    """Open answer on the new concept: the colour of the big shape."""
    big = next(o for o in scene.objects if o.big)
    return [Question(f"What color is the big shape?\n{SHORT_INSTRUCTION}", [big.colour], [], "size")]


def ask_big_count_choice(scene: Scene, rng: random.Random) -> list[Question]:
    """Multiple choice on the new concept: how many shapes are big (0-3)."""
    n_big = str(sum(o.big for o in scene.objects))
    return [_choice_question("How many big shapes are there?", ["0", "1", "2", "3"], n_big)]


def ask_big_any_pair(scene: Scene, rng: random.Random) -> list[Question]:
    """Yes/no pair on the new concept: 'Is there a big shape?' and 'Are all the shapes small?',
    one true and one false. Size is read over the whole image, as counting is upstream: a model
    this small does not learn to pick out the object a question names."""
    return _complementary_pair("Is there a big shape?", "Are all the shapes small?",
                               any(o.big for o in scene.objects), "size", rng)


def ask_count_choice(scene: Scene, rng: random.Random) -> list[Question]:
    """Multiple choice in a new answer format: upstream answers counts with a digit or yes/no."""
    n = NUMBER_WORDS[len(scene.objects)]
    return [_choice_question("How many shapes are there?", list(NUMBER_WORDS.values()), n)]


def ask_more_than_two_pair(scene: Scene, rng: random.Random) -> list[Question]:
    """Yes/no pair of a new question type: upstream asks 'only one shape?', never about two."""
    return _complementary_pair("Are there more than two shapes?", "Are there at most two shapes?",
                               len(scene.objects) > 2, "count", rng)


@dataclass(frozen=True)
class Task:
    ask: Callable[[Scene, random.Random], list[Question]]
    task_type: str        # how the answer is read: vqa | yesno | choice | caption | exact
    n_min: int = 1        # objects per scene
    one_big: bool = False
    # Half the scenes hold a big shape: with sizes drawn per object, ~70% would, and always
    # answering "yes, there is a big shape" would pass for skill.
    balance_any_big: bool = False
    # Half the scenes hold three shapes: with 1-3 drawn uniformly, always answering "no, not more
    # than two" would score 67%.
    balance_three: bool = False


TASKS: dict[str, Task] = {
    "attribute": Task(ask_attribute, "vqa"),
    "count_yesno": Task(ask_count_pair, "yesno"),
    "colour_choice": Task(ask_colour_choice, "choice"),
    "caption": Task(ask_caption, "caption"),
    "big_colour": Task(ask_big_colour, "exact", n_min=2, one_big=True),
    "big_count_choice": Task(ask_big_count_choice, "choice"),
    "big_any": Task(ask_big_any_pair, "yesno", balance_any_big=True),
    "count_choice": Task(ask_count_choice, "choice"),
    "more_than_two": Task(ask_more_than_two_pair, "yesno", balance_three=True),
}


def generate(task_name: str, n_images: int, seed: int, split: str) -> list[dict]:
    """Records in tunebench's schema for n_images scenes of one task (pairs give two records per image)."""
    task = TASKS[task_name]
    rng = random.Random(f"{task_name}/{split}/{seed}")
    records = []
    for i in range(n_images):
        any_big = rng.random() < 0.5 if task.balance_any_big else None
        n_min, n_max = task.n_min, 3
        if task.balance_three:
            n_min, n_max = (3, 3) if rng.random() < 0.5 else (task.n_min, 2)
        scene = random_scene(rng, n_min=n_min, n_max=n_max, one_big=task.one_big, any_big=any_big)
        png = render(scene, rng)
        image_id = f"{task_name}-{split}-{i}"
        for j, q in enumerate(task.ask(scene, rng)):
            records.append({
                "id": f"{image_id}-{j}",
                "image_id": image_id,
                "image": png,
                "question": q.question,
                "choices": q.choices,
                "answers": q.answers,
                "task_type": task.task_type,
                "category": q.category,
                "split": split,
            })
    return records
