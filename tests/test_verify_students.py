"""verify on code as students write it (tests/student_code/): CS231n layers.py files and
micrograd engines, with zero adapter lines. Correct layers agree; each typical bug fails with
its diagnosis; what the code cannot express is skipped, not failed."""
import json
from pathlib import Path

import pytest

from compare.cli import main
from compare.verify import load, verify, verify_file

STUDENTS = Path(__file__).resolve().parent / "student_code"
LAYERS, BUGGY = STUDENTS / "layers.py", STUDENTS / "buggy_layers.py"

PAIRS = ["affine_forward, affine_backward", "relu_forward, relu_backward",
         "batchnorm_forward, batchnorm_backward", "batchnorm_forward, batchnorm_backward_alt",
         "layernorm_forward, layernorm_backward", "dropout_forward, dropout_backward",
         "conv_forward_naive, conv_backward_naive",
         "max_pool_forward_naive, max_pool_backward_naive",
         "word_embedding_forward, word_embedding_backward", "rnn_step_forward, rnn_step_backward",
         "rnn_forward, rnn_backward", "lstm_step_forward, lstm_step_backward",
         "lstm_forward, lstm_backward", "softmax_loss"]


@pytest.fixture(scope="module")
def correct():
    return dict(verify_file(LAYERS, conventions=["biased-running-var"]))


@pytest.fixture(scope="module")
def buggy():
    return dict(verify_file(BUGGY))


def _diagnoses(report, name=None):
    return [d.diagnosis for d in report.failures if name is None or d.name == name]


# --- correct solutions ---------------------------------------------------------------------
def test_every_correct_cs231n_layer_agrees(correct):
    assert sorted(correct) == sorted(PAIRS)
    for label, report in correct.items():
        assert report.exit_code == 0, (label, report.table())
        assert report.ran > 0 and report.passed
    assert correct["affine_forward, affine_backward"].concept == "linear"
    assert correct["softmax_loss"].summary.startswith("your softmax_loss (CS231n function)")


def test_what_the_convention_cannot_express_is_skipped_with_the_reason(correct):
    skipped = {label: dict(r.skipped) for label, r in correct.items()}
    conv = skipped["conv_forward_naive, conv_backward_naive"]
    assert conv["groups-2"] == "conv_forward_naive cannot express groups=2"
    assert conv["dilation-2"] == "conv_forward_naive cannot express dilation=2"
    pool = skipped["max_pool_forward_naive, max_pool_backward_naive"]
    assert pool["max-3x3-stride-2-pad-1"] == "max_pool_forward_naive cannot express padding=1"
    rnn = skipped["rnn_forward, rnn_backward"]
    assert rnn["two-layers"] == "rnn_forward is one layer: it cannot express num_layers=2"
    assert rnn["relu"] == "rnn_forward is a tanh RNN: it cannot express nonlinearity='relu'"
    loss = skipped["softmax_loss"]
    assert loss["ce-weight"] == "softmax_loss cannot express class weights"
    assert loss["ce-k-dim"] == "softmax_loss takes scores of shape (N, C), not 4-d ones"
    bn = skipped["batchnorm_forward, batchnorm_backward"]
    assert bn["momentum-none"].startswith("batchnorm_forward cannot express momentum=None")
    assert bn["eval-running-stats"].startswith("batchnorm_forward keeps no cache in 'test' mode")
    # layers with every case expressible skip none
    assert not skipped["affine_forward, affine_backward"]
    assert not skipped["layernorm_forward, layernorm_backward"]


def test_biased_running_variance_is_named_and_declarable():
    pair = load(f"{LAYERS}:batchnorm_forward,batchnorm_backward")
    report = verify("batchnorm", pair, cases=["2d-train", "3d-train"])
    assert report.exit_code == 1
    assert {d.name for d in report.failures} == {"buffer.running_var"}
    assert all("--convention biased-running-var" in d.diagnosis for d in report.failures)
    declared = verify("batchnorm", pair, cases=["2d-train", "3d-train"],
                      conventions=["biased-running-var"])
    assert declared.passed and declared.exit_code == 0


def test_float32_runs_of_code_allocating_float64_get_one_note():
    pair = load(f"{LAYERS}:dropout_forward,dropout_backward")
    report = verify("dropout", pair, dtype="float32")
    assert report.passed, report.table()  # the mask (rand < p) / p is float64: values still agree
    assert len(report.notes) == 1 and "float64 where float32 is expected" in report.notes[0]


# --- typical bugs ------------------------------------------------------------------------------
def test_an_unfinished_backward_is_named(buggy):
    report = buggy["affine_forward, affine_backward"]
    assert report.exit_code == 1
    assert "case '2d', float64: affine_backward returned None as dw, expected an array of " \
           "shape (3, 5)" in report.error


def test_a_subgradient_at_the_kink_is_named(buggy):
    report = buggy["relu_forward, relu_backward"]
    (sentence,) = set(_diagnoses(report, "grad.input.x"))
    assert "exactly 0" in sentence and "x > 0 vs x >= 0" in sentence
    assert {d.case for d in report.failures} == {"relu-exact-zeros"}


def test_assignment_where_overlapping_windows_must_add_is_named(buggy):
    conv = buggy["conv_forward_naive, conv_backward_naive"]
    assert any("= where the contributions must add up (+=)" in s
               for s in _diagnoses(conv, "grad.input.x"))
    pool = buggy["max_pool_forward_naive, max_pool_backward_naive"]
    overlapping = [d.diagnosis for d in pool.failures  # fd samples elements: no window counts
                   if d.case == "max-overlapping" and d.check != "yours-vs-fd"]
    assert overlapping and all("(+=)" in s for s in overlapping)


def test_a_slice_that_is_empty_when_the_padding_is_0_is_named(buggy):
    conv = buggy["conv_forward_naive, conv_backward_naive"]
    assert "case '3x3', float64: conv_backward_naive returned dx of shape (2, 3, 0, 0), " \
           "expected (2, 3, 6, 6)" in conv.error
    assert conv.exit_code == 1 and conv.ran == 10  # the run went on after each error


def test_a_missing_max_shift_in_softmax_is_named(buggy):
    report = buggy["softmax_loss"]
    assert {d.case for d in report.failures} == {"ce-huge-logits"}
    assert all("NaN or inf" in s and "overflow" in s for s in _diagnoses(report))


def test_overwriting_repeated_indices_is_named(buggy):
    report = buggy["word_embedding_forward, word_embedding_backward"]
    assert all("np.add.at" in s for s in _diagnoses(report, "grad.param.weight"))


def test_drop_probability_is_a_named_convention(buggy):
    report = buggy["dropout_forward, dropout_backward"]
    assert report.failures and all("--convention drop-probability" in s
                                   for s in _diagnoses(report))
    declared = verify("dropout", load(f"{BUGGY}:dropout_forward,dropout_backward"),
                      conventions=["drop-probability"])
    assert declared.exit_code == 0, declared.table()


def test_wrong_gradients_without_a_pattern_still_fail(buggy):
    assert buggy["layernorm_forward, layernorm_backward"].exit_code == 1
    assert buggy["rnn_forward, rnn_backward"].exit_code == 1
    # the buggy file's step functions are right: only its sequence backward drops dprev_h
    assert buggy["rnn_step_forward, rnn_step_backward"].exit_code == 0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cs231n_lstm_pairs_agree_with_gate_order_i_f_o_g(dtype):
    step = verify("lstm", load(f"{LAYERS}:lstm_step_forward,lstm_step_backward"), dtype=dtype)
    assert step.exit_code == 0 and step.passed, step.table()
    # one layer, no projection: every such case runs, c0 given or not, batch-first, unbatched
    assert step.ran == 7
    skipped = dict(step.skipped)
    assert skipped["two-layers"] == "lstm_step_forward is one layer: it cannot express " \
                                    "num_layers=2"
    assert skipped["bidirectional"] == "lstm_step_forward cannot express bidirectional=True"
    assert skipped["proj-size"] == "lstm_step_forward cannot express proj_size=3"
    sequence = verify("lstm", load(f"{LAYERS}:lstm_forward,lstm_backward"), dtype=dtype)
    assert sequence.exit_code == 0 and sequence.passed, sequence.table()
    assert sequence.ran == 1  # lstm_forward starts from c0 = 0: only the case without hx runs
    assert dict(sequence.skipped)["h0-c0-given"] == "lstm_forward starts from c0 = 0: it " \
                                                   "cannot express a given c0"


def test_lstm_step_backward_without_the_forget_gate_in_dprev_c_fails(buggy):
    assert buggy["lstm_step_forward, lstm_step_backward"].exit_code == 1
    pair = load(f"{BUGGY}:lstm_step_forward,lstm_step_backward")
    # one step: dprev_c reaches nothing but dL/dc0, so that is the one tensor named
    report = verify("lstm", pair, cases=["sequence-length-1"])
    assert report.exit_code == 1
    assert {d.name for d in report.failures} == {"grad.input.c0"}


# --- micrograd engines ----------------------------------------------------------------------
def test_the_real_micrograd_engine_and_its_relu_only_mlp():
    value = verify("micrograd", load(f"{STUDENTS}/micrograd_engine.py:Value"))
    assert value.exit_code == 0 and value.ran == 5 and not value.skipped
    mlp = verify("micrograd", load(f"{STUDENTS}/micrograd_engine.py:MLP"))
    assert mlp.exit_code == 0 and mlp.ran == 1
    assert mlp.skipped == [("mlp-tanh", "MLP(nin, nouts) is ReLU-only: it cannot express "
                                        "activation='tanh'")]


def test_the_lecture_engine_is_probed_and_random_graphs_use_what_it_has():
    report = verify("micrograd", load(f"{STUDENTS}/micrograd_lecture.py:Value"))
    assert report.exit_code == 0, report.table()
    assert dict(report.skipped) == {"sanity": "Value has no relu (needed by this graph)",
                                    "more-ops": "Value has no rdiv, relu (needed by this graph)"}
    assert report.ran == 3  # the three random graphs, drawn without relu, rsub, rdiv, ...


def test_the_lectures_assignment_bug_is_named():
    report = verify("micrograd", load(f"{STUDENTS}/micrograd_lecture_buggy.py:Value"))
    assert report.exit_code == 1
    assert all("= where the contributions must add up (+=)" in s
               for s in _diagnoses(report, "node.grad"))
    row = report.summary_row("Value")
    assert "(+=)" in row  # the one-row summary shows the specific diagnosis first


# --- the command line over a whole file ---------------------------------------------------------
def test_cli_verify_a_whole_file(capsys):
    assert main(["verify", str(STUDENTS / "micrograd_engine.py")]) == 0
    out = capsys.readouterr().out
    assert out.count("agree") >= 2 and "2 checked: 2 agree, 0 do not, 0 could not run; " \
                                       "1 case(s) skipped" in out
    assert main(["verify", str(STUDENTS / "micrograd_lecture_buggy.py"), "--json"]) == 1
    (line,) = capsys.readouterr().out.strip().splitlines()
    data = json.loads(line)
    assert data["checked"] == "Value" and data["skipped"] == 2 and data["ran"] == 3
    assert {c["case"] for c in data["skipped_cases"]} == {"sanity", "more-ops"}


def test_cli_details_and_conventions(capsys):
    assert main(["verify", str(STUDENTS / "micrograd_lecture.py"), "--details"]) == 0
    out = capsys.readouterr().out
    assert "yours-vs-torch" in out and "skipped sanity: Value has no relu" in out
    assert main(["verify", str(LAYERS), "--convention", "keep-it"]) == 2
    assert "unknown convention 'keep-it'; known: biased-running-var, drop-probability" \
        in capsys.readouterr().err


def test_a_file_with_nothing_recognisable_is_exit_2(capsys, tmp_path):
    path = tmp_path / "nothing.py"
    path.write_text("def helper(x):\n    return x\n")
    assert main(["verify", str(path)]) == 2
    assert "defines no CS231n-style pair" in capsys.readouterr().err


# --- the makemore backprop lecture's Bessel-corrected batch variance ----------------------------
def test_the_lectures_bessel_corrected_mlp_is_named_and_declarable():
    from numpy_impl.layers.mlp import CharMLP

    class LectureMLP(CharMLP):  # the lecture's solution: 1/(B-1) in the batch variance
        def __init__(self, vocab_size=27, block_size=3, n_embd=10, n_hidden=64,
                     momentum=0.001, eps=1e-5):
            super().__init__(vocab_size, block_size, n_embd, n_hidden, momentum, eps,
                             bessel=True)

    report = verify("mlp", LectureMLP, cases=["train"])
    assert report.exit_code == 1
    assert "--convention bessel-variance" in report.notes[-1]
    declared = verify("mlp", LectureMLP, conventions=["bessel-variance"])
    assert declared.exit_code == 0, declared.table()
    assert {d.case for d in declared.diffs} == {"lecture-bessel", "lecture-bessel-eval"}
    # a torch-convention solution (1/B) fails the declared variant: the convention is checked

    class TorchConvention(CharMLP):
        def __init__(self, vocab_size=27, block_size=3, n_embd=10, n_hidden=64,
                     momentum=0.001, eps=1e-5):
            super().__init__(vocab_size, block_size, n_embd, n_hidden, momentum, eps)

    plain = verify("mlp", TorchConvention, conventions=["bessel-variance"],
                   cases=["lecture-bessel"])
    assert plain.exit_code == 1 and not plain.notes
