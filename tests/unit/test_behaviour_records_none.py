"""A sample or probe without an answer (or seed) is written without the field and read back."""

from ponder.behaviour.records import ProbeRecord, QuestionRecord, SampleRecord


def test_none_fields_dropped_on_write_read_back_as_none() -> None:
    sample = SampleRecord(
        seed=None,
        text="cut mid-thought",
        answer=None,
        correct=False,
        finish_reason="length",
        tokens=320,
        probes=[ProbeRecord(at=64, answer=None, correct=False)],
    )
    rec = QuestionRecord(id="7", question="q", gold="3", samples=[sample])
    line = rec.model_dump_json(exclude_none=True)  # what the collector writes
    assert '"answer"' not in line and '"seed"' not in line
    back = QuestionRecord.model_validate_json(line)
    assert back.samples[0].answer is None
    assert back.samples[0].seed is None
    assert back.samples[0].probes[0].answer is None
    assert back == rec
