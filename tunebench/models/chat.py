"""Prompting in the family's chat format: the user turn with one image and the question, and the
assistant's answer as the model is taught to write it."""

from __future__ import annotations


def _render(processor, messages: list[dict], add_generation_prompt: bool) -> str:
    return processor.tokenizer.apply_chat_template(messages, chat_template=processor.chat_template,
                                                   add_generation_prompt=add_generation_prompt, tokenize=False)


def _user_turn(question: str) -> dict:
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}


def prompt_text(processor, question: str) -> str:
    """The user turn with one image and the question, ending where the assistant's answer starts."""
    return _render(processor, [_user_turn(question)], add_generation_prompt=True)


def answer_text(processor, question: str, answer: str) -> str:
    """What follows the prompt when the assistant answers, in the family's chat format, up to and
    including its end-of-turn token (e.g. "red<|im_end|>" or " red<end_of_utterance>")."""
    prompt = prompt_text(processor, question)
    full = _render(processor, [_user_turn(question), {"role": "assistant", "content": [{"type": "text", "text": answer}]}],
                   add_generation_prompt=False)
    if not full.startswith(prompt):
        raise ValueError(f"chat template: the answered conversation does not extend the prompt {prompt!r}")
    return full[len(prompt):].rstrip("\n")
