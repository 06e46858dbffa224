"""Mutation testing of the engine and the NC scorer with mutmut 3 (issue 18).

One command (``make mutation``) writes ``benchmarks/results/mutation.md``::

    python benchmarks/mutation.py [--per-module 20] [--seed 18] [--budget 3600]

What it does:

1. Lists every mutant mutmut makes of the modules named by ``only_mutate`` in pyproject.toml's
   ``[tool.mutmut]`` (mutmut's own generator, so the names are the ones ``mutmut run`` uses).
2. Draws a seeded random sample per module: ``--per-module`` mutants (all of them when the module
   has fewer), drawn by ``random.Random(f"{seed}:{module}")`` from the sorted names, so one
   module's sample does not depend on which other modules are in scope.
3. Runs ``mutmut run NAME...`` once over all sampled mutants: mutmut copies ``src`` and ``tests``
   to ``mutants/``, mutates only the copies, maps each function to the tests that call it in one
   stats run, then runs each mutant against only those tests (fastest first, stopping at the
   first failure). One invocation for all modules means one stats run and one clean run instead
   of one per module. ``--budget`` seconds caps it: when spent, mutmut is interrupted and the
   mutants it did not reach are reported as "not run".
4. Reads the verdicts back (``mutmut results --all true``) and the diff of every survivor
   (``mutmut show``), checks that each earlier survivor listed in ``KILLED_BY`` fails the test
   named there (that test alone, run on mutmut's copy with the mutant switched on), and writes
   the report: killed / survived / timeout per module, each survivor with its reason
   (``EQUIVALENT``: keyed by mutant name and checked against the mutated line, so a reason left
   stale by a code change is flagged, not trusted).

Kill rate = (killed + timeout) / (sampled - equivalent - not run); a mutant leaves the
denominator as equivalent only when listed in ``EQUIVALENT`` with its reason. ``--report-only``
rewrites the report from the verdicts already in ``mutants/``; ``--keep`` reuses ``mutants/``
(mutmut's cached stats) instead of starting clean; ``--modules`` restricts the run (fnmatch
patterns of dotted module names). Each worker runs one BLAS/OpenMP thread.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: mutmut depends on toml there
    import toml as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mutation.md"
BIN = Path(sys.executable).parent
SCORING = "thetanet.compounds.scoring"  # the NC scorer: reported apart from the engine
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}

_PERF = "performance only: the same values"
_WORDING = "changes only the wording of an error message that no caller parses"
# Survivors no test can kill, one reason each. Key: mutant name; value: (a fragment of the
# mutated line as `mutmut show` prints it after "+", and why the mutant is equivalent).
EQUIVALENT: dict[str, tuple[str, str]] = {
    "thetanet.activations.base.x_emit__mutmut_3": (
        "astype(z.dtype, copy=None)", "copy=None instead of False: at most one more copy; "
        + _PERF),
    "thetanet.activations.base.x_emit__mutmut_5": (
        "astype(z.dtype, )", "astype copies by default: a fresh array; " + _PERF),
    "thetanet.activations.base.xǁLearnableǁ__init____mutmut_1": (
        "per_unit: bool = True", "a default nobody uses: Learnable is abstract and its three "
        "subclasses (PReLU, APL, SoftExponential) always pass per_unit"),
    "thetanet.activations.base.xǁLearnableǁ_new_param__mutmut_19": (
        "np.asarray(value, ).reshape", "the value is cast to the parameter's dtype by the "
        "assignment into it instead of just before: the same rounding, the same array"),
    "thetanet.activations.learnable.xǁAPLǁbackward__mutmut_2": (
        "self._ab(None)", "a and b as float64 inside backward: float64 models are unchanged and "
        "float32 ones get gradients rounded once to float32 instead of at every step (as "
        "accurate or more); no result beyond float32 rounding changes"),
    "thetanet.activations.learnable.xǁPReLUǁbackward__mutmut_34": (
        "np.ones((), None)", "a float64 1.0 in place of a float32 one: grad·1 and grad·α (two "
        "float32 values) are exact in float64 and round back to the same float32: bit-identical"),
    "thetanet.activations.registry.x_get__mutmut_4": (
        'identifier = "IDENTITY"', "names are lower-cased before the lookup: get(None) still "
        "gives the identity"),
    "thetanet.activations.registry.x_get__mutmut_7": (
        "PARAMS CANNOT BE COMBINED", "upper-cases an error message: " + _WORDING),
    "thetanet.activations.soft_exponential.x__softexp__mutmut_17": (
        "if (want_da) or True", "also computes ∂f/∂α when the caller does not want it: f and "
        "f' are unchanged; " + _PERF),
    "thetanet.activations.soft_exponential.xǁSoftExponentialǁ__init____mutmut_19": (
        "per_unit=true needs learnable=true", _WORDING),
    "thetanet.activations.soft_exponential.xǁSoftExponentialǁdf__mutmut_6": (
        "self.u_min, None)[1]", "want_da=None is as falsy as False: identical"),
    "thetanet.blockmatrix.xǁBlockMatrixǁ__getitem____mutmut_4": (
        "BLOCKMATRIX SUPPORTS ROW INDEXING ONLY", _WORDING),
    "thetanet.blockmatrix.xǁBlockMatrixǁ__init____mutmut_16": (
        "XXevery block must be 2-DXX", _WORDING),
    "thetanet.blockmatrix.xǁBlockMatrixǁt_matmul__mutmut_26": (
        "prev = None", "forgets which rows of a sparse block the last call wrote, so the whole "
        "block of the output is zeroed instead of those rows; " + _PERF),
    "thetanet.callbacks.xǁProgressLoggerǁ__init____mutmut_7": (
        "self.seen, self.total = 1, 0.0", "overwritten before use: on_epoch_begin sets `seen` "
        "from the epoch's offset, and on_batch_end does nothing before it (no bar)"),
    "thetanet.callbacks.xǁProgressLoggerǁon_epoch_begin__mutmut_27": (
        "leave=None", "a tqdm display option (whether a finished bar stays on the terminal); "
        "nothing reads it: cosmetic"),
    "thetanet.callbacks.xǁProgressLoggerǁon_epoch_begin__mutmut_32": (
        '{self.epochs}", leave=False', "drops the bar's unit label (ex/s becomes tqdm's "
        "it/s): cosmetic"),
    "thetanet.checkpoint.x__restore__mutmut_106": (
        'np.asarray(st["perm"], dtype=None)', "the stored permutation is read back as the int64 "
        "array that was saved (np.random.permutation / np.arange); another dtype would need a "
        "forged arrays file with matching checksums"),
    "thetanet.checkpoint.x_read_checkpoint__mutmut_29": (
        '"XXcheckpointXX"', "the file kind named in read errors: " + _WORDING),
    "thetanet.compounds.scoring.x_score_labels__mutmut_25": (
        "for x in gold], None)", "Python ints become an int64 array without the dtype too "
        "(small label indices either way): identical"),
    "thetanet.compounds.scoring.x_score_labels__mutmut_77": (
        '"macro", )', "num_classes only adds relations absent from gold and predictions, which "
        "macro-F1 leaves out of its mean (pinned by test_pin_macro_f1.py): the same value"),
    "thetanet.initializers.x_constant__mutmut_10": (
        'init.__name__ = "CONSTANT"', "the closure's __name__ is read nowhere (serialisation "
        "uses its config)"),
    "thetanet.initializers.x_get__mutmut_21": ("'XX, XX'.join(known)", _WORDING),
    "thetanet.layers.activation.xǁActivationǁforward_with_z__mutmut_3": (
        "np.array(x, copy=None)", "a defensive copy: no activation's f writes into its "
        "argument when `out` is None (each returns a new array), so z stays intact without it"),
    "thetanet.layers.activation.xǁActivationǁforward_with_z__mutmut_6": (
        "np.array(x, copy=False)", "as copy=None: f never writes into its argument when `out` "
        "is None"),
    "thetanet.layers.base.xǁLayerǁ__init____mutmut_14": (
        "np.random.default_rng(1)", "a placeholder generator: Sequential.build gives every "
        "layer its own, derived from the model's seed, and fit(seed=) reseeds them"),
    "thetanet.layers.base.xǁLayerǁ__init____mutmut_4": (
        'self.input_shape: Shape | None = ""', "the placeholder before build is read nowhere: "
        "build sets it (the model uses its own input_shape)"),
    "thetanet.layers.base.xǁLayerǁbackward__mutmut_1": (
        "grad_is_preactivation: bool = True", "the base class's backward only raises "
        "NotImplementedError: the default of an argument it never reads"),
    "thetanet.layers.dense.xǁDenseǁ_buffers__mutmut_21": (
        '(self.activation.name == "identity") and False', "an identity layer gets its own "
        "output buffer instead of sharing z's; forward then copies z into it; " + _PERF),
    "thetanet.layers.dense.xǁDenseǁ_outer__mutmut_16": (
        'self._cache.get("PAD")', "the padded-row buffers are never found again, so they are "
        "allocated every step; " + _PERF),
    "thetanet.layers.dense.xǁDenseǁ_outer__mutmut_5": (
        "x.dtype is out.dtype or", "chooses between two routes to xᵀδ for one row: the "
        "elementwise product for matching dtypes (identical values; the padded GEMM is only "
        "faster) and the GEMM for a row of another dtype than the layer (direct layer use), "
        "which then differs by float32 rounding only"),
    "thetanet.layers.dense.xǁDenseǁforward__mutmut_13": (
        "self.activation.f(z, out=None)", "a hidden layer's activation goes to a new array "
        "instead of the reused buffer; the cached and returned a are the same values "
        "(allocation only)"),
    "thetanet.layers.dense.xǁDenseǁbackward__mutmut_89": (
        "np.add.reduce(delta, out=self.d_bias)", "ufunc.reduce sums over axis 0 by default: "
        "the same call"),
    "thetanet.layers.dense.xǁDenseǁ_outer__mutmut_26": (
        "pads[1].shape[1] == delta.shape[1]", "δ's width is the layer's units, fixed once "
        "built, so the padded-row buffers are reallocated on every call instead of reused; "
        + _PERF),
    "thetanet.layers.maxout.xǁMaxoutǁforward__mutmut_1": (
        "training: bool = True", "the default of an argument every caller passes (the model "
        "and the gradient checks say training=); a call without it also caches x and the "
        "winning pieces: the same output"),
    "thetanet.layers.maxout.xǁMaxoutǁforward__mutmut_24": (
        "winner[:, :, None], )", "np.take_along_axis's axis defaults to -1 since NumPy 2.3 "
        "(installed: 2.4), the last axis, which axis=2 names: the same call (on NumPy < 2.3 "
        "the call would fail)"),
    "thetanet.files.x_read_json__mutmut_24": (
        "XXnested too deeplyXX", "changes only the wording of an error message that no "
        "caller parses"),
    "thetanet.layers.dense.xǁDenseǁforward__mutmut_15": (
        "self.activation.f(z, )", "a hidden layer's activation goes to a new array instead of "
        "the reused buffer; the cached and returned a are the same values (allocation only)"),
    "thetanet.layers.dropout.xǁDropoutǁ_forward_structured__mutmut_31": (
        "<= keep", "rng.random() draws from [0, 1) on a 2⁻⁵³ grid: `<` and `<=` differ only when "
        "a draw equals 1 − rate exactly (probability ~1e-16 per entry)"),
    "thetanet.layers.dropout.xǁDropoutǁbackward__mutmut_8": (
        "XXit first, below no trainable layerXX", _WORDING),
    "thetanet.layers.dropout.xǁDropoutǁforward__mutmut_19": (
        "bufs[0].dtype != dt and bufs[1].dtype != x.dtype", "the mask dtype follows x's "
        "(float32 → float32, float64 → float64), so for the inputs a model feeds both checks are "
        "true or false together: `and` = `or` there"),
    "thetanet.layers.dropout.xǁDropoutǁforward__mutmut_33": (
        "bufs[0].dtype == dt", "buffers reallocated on every call instead of when the shape or "
        "dtype changes; " + _PERF),
    "thetanet.layers.dropout.xǁDropoutǁforward__mutmut_35": (
        "bufs[1].dtype == x.dtype", "buffers reallocated on every call; " + _PERF),
    "thetanet.layers.dropout.xǁDropoutǁforward__mutmut_73": (
        "mask.astype(x.dtype, copy=True)", "one more copy of the mask; " + _PERF),
    "thetanet.layers.maxout.xǁMaxoutǁbackward__mutmut_1": (
        "grad_is_preactivation: bool = True", "Maxout's backward never reads the flag (it has no "
        "output activation to fuse)"),
    "thetanet.model.xǁSequentialǁcheck_x__mutmut_1": (
        'name: str = "XXxXX"', "the argument name quoted in input errors: " + _WORDING),
    "thetanet.model.xǁSequentialǁbuild__mutmut_47": (
        "self.seed + 2", "which fixed stream the layers' generators start from after build "
        "(dropout masks before any fit(seed=)): any fixed offset from the seed is as "
        "reproducible, none is specified; the weights come from the seed itself"),
    "thetanet.optimizers.xǁAdamǁ_update_rows__mutmut_16": (
        "(ends + starts) >= 16", "each run is a block of consecutive rows, which the slice route "
        "and the gather/scatter route update identically: the threshold only picks the faster"),
    "thetanet.optimizers.xǁAdamǁ_update_rows__mutmut_90": (
        "self._row_buffers[id(None)]", "the gather buffers are stored under a key never looked "
        "up, so they are allocated every step; " + _PERF),
    "thetanet.saving.x_write_bundle__mutmut_54": (
        "sort_keys=None", "the JSON keys are written in insertion order instead of sorted; "
        "readers parse the JSON and the checksum is over the canonical (sorted) form"),
    "thetanet.training.x__batches__mutmut_28": (
        "max(2, x.itemsize", "a row of float32/float64 features has at least 4 bytes, so "
        "max(1, …) and max(2, …) never differ"),
    "thetanet.training.xǁTrainerǁ_make_step__mutmut_63": (
        "loss, a = fb(x, y, )", "training=True is the default of the call it drops: identical"),
}

# The survivors above that a test could tell apart, by what differs; all the others behave
# identically (the same values, or only a different speed or allocation).
NOT_IDENTICAL: dict[str, str] = {
    **dict.fromkeys([
        "thetanet.activations.registry.x_get__mutmut_7",
        "thetanet.activations.soft_exponential.xǁSoftExponentialǁ__init____mutmut_19",
        "thetanet.blockmatrix.xǁBlockMatrixǁ__getitem____mutmut_4",
        "thetanet.blockmatrix.xǁBlockMatrixǁ__init____mutmut_16",
        "thetanet.checkpoint.x_read_checkpoint__mutmut_29",
        "thetanet.initializers.x_get__mutmut_21",
        "thetanet.layers.dropout.xǁDropoutǁbackward__mutmut_8",
        "thetanet.files.x_read_json__mutmut_24",
        "thetanet.model.xǁSequentialǁcheck_x__mutmut_1"], "an error message's wording"),
    **dict.fromkeys([
        "thetanet.callbacks.xǁProgressLoggerǁon_epoch_begin__mutmut_27",
        "thetanet.callbacks.xǁProgressLoggerǁon_epoch_begin__mutmut_32",
        "thetanet.saving.x_write_bundle__mutmut_54"],
        "a display no program reads (progress bar, JSON key order)"),
    **dict.fromkeys([
        "thetanet.activations.learnable.xǁAPLǁbackward__mutmut_2",
        "thetanet.layers.dense.xǁDenseǁ_outer__mutmut_5"], "float32 rounding"),
    **dict.fromkeys([
        "thetanet.model.xǁSequentialǁbuild__mutmut_47",
        "thetanet.layers.base.xǁLayerǁ__init____mutmut_14"], "an unspecified random stream"),
}

_A = "tests/test_mutation_kills_activations.py::"
_F = "tests/test_mutation_kills_files.py::"
_L = "tests/test_mutation_kills_layers.py::"
_M = "tests/test_mutation_kills_metrics.py::"
_T = "tests/test_mutation_kills_training.py::"
# Survivors of the first run (seed 18, 20 per module) that a test added for them kills.
KILLED_BY: dict[str, str] = {
    # session 4 (the layers' shared WeightedLayer base moved code; a new sample)
    "thetanet.layers.dense.xǁDenseǁ_outer__mutmut_30":
        _L + "test_online_gradient_of_a_wide_kernel_is_the_batch_gradient[float32]",
    "thetanet.layers.dense.xǁDenseǁbackward__mutmut_75":
        _L + "test_a_dense_bias_gradient_from_a_float64_delta",
    "thetanet.layers.dense.xǁDenseǁpreactivation__mutmut_5":
        _L + "test_preactivation_is_in_the_layers_dtype_for_any_input[dense]",
    "thetanet.layers.maxout.xǁMaxoutǁpreactivation__mutmut_5":
        _L + "test_preactivation_is_in_the_layers_dtype_for_any_input[maxout]",
    **dict.fromkeys([
        "thetanet.layers.maxout.xǁMaxoutǁ__init____mutmut_8",
        "thetanet.layers.maxout.xǁMaxoutǁbuild__mutmut_7",
        "thetanet.layers.weighted.xǁWeightedLayerǁ_create_weights__mutmut_16",
        "thetanet.layers.weighted.xǁWeightedLayerǁ_init_weights__mutmut_7"],
        _L + "test_weighted_layers_keep_their_name_and_dtype_and_name_themselves_in_errors"),
    "thetanet.activations.base.xǁActivationFunctionǁ__repr____mutmut_1":
        _A + "test_repr_shows_the_constructor_arguments",
    "thetanet.activations.learnable.xǁAPLǁbuild__mutmut_33":
        _A + "test_apl_hinges_start_standard_normal",
    "thetanet.activations.learnable.xǁAPLǁdf__mutmut_13":
        _A + "test_apl_df_and_backward_agree_at_the_hinges_too",
    "thetanet.activations.lecture.xǁArctanǁdf__mutmut_3":
        _A + "test_arctan_derivative_of_huge_inputs_is_zero_without_warnings",
    "thetanet.activations.registry.x_get__mutmut_13":
        _A + "test_a_config_without_a_name_is_refused",
    "thetanet.activations.registry.x_register__mutmut_4":
        _A + "test_registering_a_taken_name_says_which",
    "thetanet.activations.softmax.xǁSoftmaxǁdf__mutmut_1":
        _A + "test_softmax_has_no_elementwise_derivative_and_says_what_to_use",
    "thetanet.activations.softmax.xǁSoftmaxǁdf__mutmut_4":
        _A + "test_softmax_has_no_elementwise_derivative_and_says_what_to_use",
    "thetanet.activations.table.x__glue_brackets__mutmut_7":
        _A + "test_wrapping_breaks_between_cases_and_at_spaces_outside_brackets",
    "thetanet.activations.table.x__num__mutmut_21": _A + "test_ranges_print_their_own_bounds",
    "thetanet.activations.table.x_format_table__mutmut_41":
        _A + "test_wrapped_notes_indent_their_continuation_lines",
    "thetanet.activations.table.x_table_rows__mutmut_11":
        _A + "test_the_monotonic_column_follows_the_functions",
    "thetanet.activations.table.x_wrap_formula__mutmut_5":
        _A + "test_wrapping_breaks_between_cases_and_at_spaces_outside_brackets",
    "thetanet.layers.activation.xǁActivationǁforward_with_z__mutmut_2":
        _A + "test_activation_layer_as_the_fused_output_evaluates_exactly",
    "thetanet.callbacks.xǁProgressLoggerǁon_batch_end__mutmut_12":
        _T + "test_verbose_1_shows_one_bar_per_epoch_with_the_running_loss",
    "thetanet.callbacks.xǁProgressLoggerǁon_epoch_begin__mutmut_6":
        _T + "test_the_progress_logger_takes_the_callback_protocol_without_logs",
    "thetanet.callbacks.xǁProgressLoggerǁon_epoch_begin__mutmut_8":
        _T + "test_the_progress_logger_takes_the_callback_protocol_without_logs",
    "thetanet.callbacks.xǁProgressLoggerǁon_epoch_end__mutmut_9":
        _T + "test_verbose_1_without_tqdm_and_verbose_2_print_one_line_per_epoch",
    "thetanet.checkpoint.x__restore__mutmut_12":
        _T + "test_resuming_with_other_callbacks_names_them",
    "thetanet.checkpoint.x__restore__mutmut_13":
        _T + "test_resuming_with_other_callbacks_names_them",
    "thetanet.gradcheck.x__loss__mutmut_7":
        _T + "test_inference_forward_backward_of_a_dropout_model_has_no_noise",
    "thetanet.gradcheck.x_numerical_gradients__mutmut_1":
        _T + "test_numerical_gradients_with_their_defaults_match_backprop",
    "thetanet.model.x_load_checkpoint__mutmut_16":
        _T + "test_a_loaded_checkpoint_has_the_compiled_optimiser_with_its_state",
    "thetanet.model.xǁSequentialǁ_evaluate__mutmut_34":
        _T + "test_validation_loss_through_an_unfused_output",
    "thetanet.model.xǁSequentialǁ_forward_backward__mutmut_16":
        _T + "test_inference_forward_backward_of_a_dropout_model_has_no_noise",
    "thetanet.model.xǁSequentialǁforward_backward__mutmut_7":
        _T + "test_inference_forward_backward_of_a_dropout_model_has_no_noise",
    "thetanet.training.xǁTrainerǁ_after_batch__mutmut_19":
        _T + "test_a_crash_leaves_the_checkpoint_of_the_last_kth_batch",
    "thetanet.training.xǁTrainerǁ_fit_loop__mutmut_58":
        _T + "test_a_crash_leaves_the_checkpoint_of_the_last_kth_batch",
    "thetanet.training.xǁTrainerǁ_fit_loop__mutmut_44":
        _T + "test_a_resumed_epoch_bar_continues_where_the_epoch_stopped",
    "thetanet.training.xǁ_Runǁ__init____mutmut_11":
        _T + "test_divergence_without_validation_restores_the_epoch_of_lowest_training_loss",
    "thetanet.checkpoint.x__check_optimizer_state__mutmut_1":
        _F + "test_a_stored_optimiser_state_with_odd_entries_is_refused",
    "thetanet.checkpoint.x__check_optimizer_state__mutmut_34":
        _F + "test_a_stored_optimiser_state_with_odd_entries_is_refused",
    "thetanet.files.x__kind__mutmut_1":
        _F + "test_a_path_that_is_no_regular_file_is_refused_saying_what_it_is",
    "thetanet.files.x__kind__mutmut_3":
        _F + "test_a_path_that_is_no_regular_file_is_refused_saying_what_it_is",
    "thetanet.files.x__parse_int__mutmut_2":
        _F + "test_integers_of_max_int_digits_are_read_longer_ones_refused",
    "thetanet.files.x_error_naming__mutmut_6":
        _F + "test_a_write_into_a_missing_directory_names_the_target",
    "thetanet.files.x_read_json__mutmut_22":
        _F + "test_a_missing_or_corrupt_document_says_which_and_why",
    "thetanet.files.x_read_json__mutmut_7":
        _F + "test_a_missing_or_corrupt_document_says_which_and_why",
    "thetanet.files.x_read_regular__mutmut_18":
        _F + "test_a_json_file_of_exactly_max_bytes_is_read",
    "thetanet.compounds.scoring.x_format_report__mutmut_1":
        _M + "test_the_report_names_the_set_compares_with_the_published_best_and_sorts_by_support",
    "thetanet.compounds.scoring.x_format_report__mutmut_18":
        _M + "test_the_report_names_the_set_compares_with_the_published_best_and_sorts_by_support",
    "thetanet.compounds.scoring.x_format_report__mutmut_39":
        _M + "test_the_report_names_the_set_compares_with_the_published_best_and_sorts_by_support",
    "thetanet.compounds.scoring.x_score_labels__mutmut_2":
        _M + "test_gold_and_predictions_of_different_lengths_are_refused_with_the_counts",
    "thetanet.compounds.scoring.x_score_labels__mutmut_4":
        _M + "test_a_given_label_inventory_keeps_its_order",
    "thetanet.compounds.scoring.x_score_labels__mutmut_55":
        _M + "test_per_relation_scores_include_relations_only_gold_or_only_predicted",
    "thetanet.initializers.x__fans__mutmut_4":
        _M + "test_a_1d_glorot_shape_uses_its_length_as_both_fans",
    "thetanet.initializers.x_get__mutmut_12": _M + "test_named_initialisers_load_from_a_config",
    "thetanet.initializers.x_get__mutmut_22": _M + "test_named_initialisers_load_from_a_config",
    "thetanet.initializers.x_normal__mutmut_13":
        _M + "test_a_normal_initialiser_round_trips_through_its_config",
    "thetanet.initializers.x_normal__mutmut_15":
        _M + "test_a_normal_initialiser_round_trips_through_its_config",
    "thetanet.metrics.x_f1_score__mutmut_2": _M + "test_f1_defaults_to_the_support_weighted_mean",
    "thetanet.metrics.x_precision_recall_f1__mutmut_17":
        _M + "test_an_unpredicted_class_scores_0_without_warnings",
    "thetanet.metrics.x_to_labels__mutmut_10": _M + "test_float_labels_round_to_the_nearest_class",
    "thetanet.layers.base.x_layer_from_config__mutmut_6":
        _L + "test_an_unknown_layer_class_is_named",
    "thetanet.layers.base.xǁLayerǁ__repr____mutmut_2": _L + "test_repr_of_a_layer_shows_its_config",
    "thetanet.layers.base.xǁLayerǁforward_linear__mutmut_2":
        _L + "test_layers_without_a_fused_output_say_so_by_name",
    "thetanet.layers.base.xǁLayerǁforward_with_z__mutmut_2":
        _L + "test_layers_without_a_fused_output_say_so_by_name",
    "thetanet.layers.dense.xǁDenseǁ_outer__mutmut_24":
        _L + "test_online_gradient_of_a_wide_kernel_is_the_batch_gradient",
    "thetanet.layers.dense.xǁDenseǁforward__mutmut_21":
        _L + "test_a_float32_dense_layer_fed_float64_computes_in_float32",
    "thetanet.layers.dense.xǁDenseǁforward_linear__mutmut_37":
        _L + "test_a_dense_layer_takes_an_ndarray_subclass_such_as_a_memmap",
    "thetanet.layers.dense.xǁDenseǁforward_linear__mutmut_38":
        _L + "test_a_dense_layer_takes_an_ndarray_subclass_such_as_a_memmap",
    "thetanet.layers.dense.xǁDenseǁbackward__mutmut_60":
        _L + "test_a_dense_layer_takes_an_ndarray_subclass_such_as_a_memmap",
    "thetanet.layers.maxout.xǁMaxoutǁ__init____mutmut_45":
        _L + "test_unbuilt_layers_have_no_parameters",
    "thetanet.layers.maxout.xǁMaxoutǁbackward__mutmut_6":
        _L + "test_backward_passes_gradients_in_the_models_dtype",
    "thetanet.losses.x__logsumexp__mutmut_2":
        _L + "test_crossentropy_from_logits_of_very_different_scales",
    "thetanet.losses.xǁCategoricalCrossentropyǁgrad__mutmut_23":
        _L + "test_crossentropy_of_a_zero_probability_is_clipped",
    "thetanet.losses.xǁCategoricalCrossentropyǁvalue__mutmut_37":
        _L + "test_crossentropy_of_a_zero_probability_is_clipped",
}


@dataclass
class Module:
    name: str
    path: str
    mutants: list[str]
    sample: list[str] = field(default_factory=list)


def mutmut_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


def list_modules(cfg: dict) -> list[Module]:
    """Every module in scope with all its mutant names, as mutmut names them."""
    try:  # mutmut's generator (3.x): the same names `mutmut run` creates
        from mutmut.mutation.file_mutation import mutate_file_contents
        from mutmut.utils.format_utils import get_mutant_name
    except ImportError as e:  # pragma: no cover - a mutmut without these internals
        sys.exit(f"mutation.py needs mutmut 3.x (pip install -e '.[mutation]'): {e}")
    modules = []
    for src in cfg.get("source_paths", ["src"]):
        for path in sorted((ROOT / src).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if not any(fnmatch.fnmatch(str(rel), g) for g in cfg["only_mutate"]):
                continue
            names = mutate_file_contents(str(rel), path.read_text()).mutant_names
            keys = sorted(get_mutant_name(rel, n) for n in names)
            if keys:  # the module: the key up to its mangled function name
                modules.append(Module(keys[0].rsplit(".", 1)[0], str(rel), keys))
    return modules


def draw(modules: list[Module], per_module: int, seed: int) -> None:
    for m in modules:
        rng = random.Random(f"{seed}:{m.name}")
        m.sample = sorted(rng.sample(m.mutants, min(per_module, len(m.mutants))))


def run_mutmut(names: list[str], budget: float, children: int, log: Path) -> tuple[float, bool]:
    """`mutmut run` over the names; returns (seconds, interrupted by the budget)."""
    cmd = [str(BIN / "mutmut"), "run", "--max-children", str(children), *names]
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **ONE_THREAD}, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=budget)
            cut = False
        except subprocess.TimeoutExpired:  # mutmut stops its workers on SIGINT, keeps verdicts
            cut = True
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0 and not cut:
        sys.exit(f"mutmut run failed ({proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return time.monotonic() - t0, cut


def verdicts() -> dict[str, str]:
    out = subprocess.run([str(BIN / "mutmut"), "results", "--all", "true"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        key, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in key:
            found[key] = status
    return found


def diff_of(name: str) -> str:
    out = subprocess.run([str(BIN / "mutmut"), "show", name], cwd=ROOT, capture_output=True,
                         text=True).stdout
    keep = [ln for ln in out.splitlines()
            if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++"))]
    return "\n".join(keep) or out.strip()


def kills(name: str, test: str) -> bool:
    """Whether ``test`` alone fails with mutant ``name`` switched on in mutmut's copy (the
    trampolines read MUTANT_UNDER_TEST at every call)."""
    env = {**os.environ, **ONE_THREAD, "MUTANT_UNDER_TEST": name, "PYTHONPATH": "src"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                        test], cwd=ROOT / "mutants", env=env, capture_output=True, text=True)
    return r.returncode == 1


def status_class(status: str) -> str:
    return {"killed": "killed", "timeout": "timeout", "survived": "survived",
            "no tests": "no_tests", "not checked": "not_run",
            "check was interrupted by user": "not_run"}.get(status, "other")


@dataclass
class Row:
    killed: int = 0
    timeout: int = 0
    survived: int = 0
    no_tests: int = 0
    equivalent: int = 0
    not_run: int = 0
    other: int = 0  # suspicious, segfault: counted as not detected

    def add(self, other: Row) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def rate(self, with_equivalent: bool = False) -> str:
        detected = self.killed + self.timeout
        d = detected + self.survived + self.no_tests + self.other
        d += self.equivalent if with_equivalent else 0
        return f"{100 * detected / d:.1f} %" if d else "—"


def reason_for(name: str, diff: str) -> tuple[str | None, str]:
    """(reason, note): the listed reason if its line fragment is still in the mutant's diff."""
    if name not in EQUIVALENT:
        return None, "no reason recorded"
    fragment, reason = EQUIVALENT[name]
    added = " ".join(ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+"))
    if re.sub(r"\s+", "", fragment) not in re.sub(r"\s+", "", added):
        return None, f"stale reason (fragment {fragment!r} not in the diff): re-examine"
    return reason, ""


def _selection(cfg: dict) -> str:
    args = cfg.get("pytest_add_cli_args_test_selection", [])
    files = [a for a in args if a.startswith("tests/") and "::" not in a]
    return f"{len(files)} test files ({', '.join(Path(f).stem for f in files)})"


def report(modules: list[Module], status: dict[str, str], verified: dict[str, bool],
           timing: dict, args: argparse.Namespace) -> str:
    import mutmut

    cfg = mutmut_config()
    rows: dict[str, Row] = {}
    survivors: list[str] = []
    unexplained = 0
    for m in modules:
        row = rows[m.name] = Row()
        for name in m.sample:
            st = status.get(name, "not checked")
            cls = status_class(st)
            if cls in ("survived", "no_tests", "other"):
                diff = diff_of(name)
                reason, note = reason_for(name, diff)
                if reason is not None:
                    what = NOT_IDENTICAL.get(name, "identical behaviour")
                    cls, verdict = "equivalent", f"equivalent ({st}; {what}): {reason}"
                else:
                    unexplained += 1
                    verdict = f"**{st}, unexplained** ({note})"
                survivors += [f"- `{name}` — {verdict}", "", "  ```diff",
                              *[f"  {ln}" for ln in diff.splitlines()], "  ```", ""]
            setattr(row, cls, getattr(row, cls) + 1)
    engine, pop, sampled = Row(), 0, 0
    for m in modules:
        if m.name != SCORING:
            engine.add(rows[m.name])
            pop, sampled = pop + len(m.mutants), sampled + len(m.sample)

    engine_eq = [n for m in modules if m.name != SCORING for n in m.sample
                 if n in EQUIVALENT and status_class(status.get(n, "")) in
                 ("survived", "no_tests", "other")]
    by_kind: dict[str, int] = {}
    for n in engine_eq:
        if n in NOT_IDENTICAL:
            by_kind[NOT_IDENTICAL[n]] = by_kind.get(NOT_IDENTICAL[n], 0) + 1
    same = len(engine_eq) - sum(by_kind.values())
    kinds = ", ".join(f"{c} change only {k}" for k, c in sorted(by_kind.items()))
    strict = Row(**vars(engine))
    strict.survived += sum(by_kind.values())
    strict.equivalent -= sum(by_kind.values())

    def line(label: str, m_pop: int, n: int, r: Row) -> str:
        return (f"| {label} | {m_pop} | {n} | {r.killed} | {r.timeout} | {r.survived} | "
                f"{r.no_tests} | {r.equivalent} | {r.not_run} | {r.rate()} |")

    table = [line(f"`{m.name}`", len(m.mutants), len(m.sample), rows[m.name])
             for m in modules if m.name != SCORING]
    table.append(line("**engine total**", pop, sampled, engine))
    table += [line(f"`{m.name}` (NC scorer, not in the engine total)", len(m.mutants),
                   len(m.sample), rows[m.name]) for m in modules if m.name == SCORING]
    took = (f"{timing['mutmut'] / 60:.1f} min" + (" (cut by the budget)" if timing["cut"] else "")
            + f", the whole script {timing['total'] / 60:.1f} min")
    lines = [
        "# Mutation testing: the engine and the NC scorer (issue 18)", "",
        f"Measured by `benchmarks/mutation.py` (`make mutation`) {time.strftime('%Y-%m-%d %H:%M')};"
        f" the mutmut run took {took}. mutmut {mutmut.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores, {args.max_children} workers "
        f"(process isolation: {cfg.get('process_isolation', 'fork')}), one BLAS/OpenMP thread "
        "each.", "",
        f"**Sample.** Per module, {args.per_module} mutants (all of them when it has fewer), "
        f"drawn by `random.Random(\"{args.seed}:<module>\").sample(...)` from its sorted mutant "
        f"names: seed **{args.seed}**, {sampled} of the engine's {pop} mutants. Scope: "
        "`only_mutate` in pyproject.toml's `[tool.mutmut]` (the engine without the conv layers, "
        "which are being integrated, plus the NC scorer). Each mutant runs only the tests that "
        "call its function (mutmut's stats run over "
        f"{_selection(cfg)}; not test_fuzz.py, whose module fixture cannot run twice in one "
        "process, nor the tests that run the code in a child process, which sees the "
        "unmutated source). A timeout counts as killed.", "",
        f"**Engine kill rate: {engine.rate()}** = (killed + timeout) / (sampled − equivalent − "
        f"not run), with {engine.equivalent} equivalent mutants left out: {same} behave "
        f"identically, {kinds or 'none'} — "
        f"{strict.rate()} if only the identical ones are left out, {engine.rate(True)} if none "
        f"is. NC scorer: {rows[SCORING].rate() if SCORING in rows else '—'}.", "",
        "| module | mutants | sampled | killed | timeout | survived | no tests | equivalent | "
        "not run | kill rate |",
        "|---|---|---|---|---|---|---|---|---|---|", *table, "",
        f"## Survivors ({unexplained} unexplained)", "",
        "Each with its diff, what it changes, and why it is left alive.", "", *survivors,
    ]
    if KILLED_BY:
        ok = sum(verified.values())
        lines += ["## Earlier survivors that the new tests kill", "",
                  "The first run with this seed (before `tests/test_mutation_kills_*.py`) left "
                  f"these alive. \"Verified\": the named test alone fails with the mutant on "
                  f"({ok} of {len(verified)} checked).", "",
                  "| mutant | status now | killed by | verified |", "|---|---|---|---|"]
        for name, test in sorted(KILLED_BY.items()):
            v = {True: "yes", False: "**no**"}.get(verified.get(name), "not in the sample")
            lines.append(f"| `{name}` | {status.get(name, 'not sampled')} | `{test}` | {v} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-module", type=int, default=20)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--budget", type=float, default=3600, help="seconds for the mutmut run")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--modules", nargs="*", help="only these (dotted names, fnmatch patterns)")
    ap.add_argument("--keep", action="store_true", help="reuse mutants/ instead of a clean run")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    os.chdir(ROOT)
    modules = list_modules(mutmut_config())
    if args.modules:
        modules = [m for m in modules if any(fnmatch.fnmatch(m.name, p) for p in args.modules)]
    draw(modules, args.per_module, args.seed)
    names = [n for m in modules for n in m.sample]
    log = ROOT / "mutants" / "mutation-run.log"
    timing_file = ROOT / "mutants" / "mutation-timing.json"
    t0 = time.monotonic()
    if not args.report_only:
        if not args.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        log.parent.mkdir(exist_ok=True)
        print(f"mutmut run over {len(names)} sampled mutants (log: {log})", flush=True)
        seconds, cut = run_mutmut(names, args.budget, args.max_children, log)
        timing_file.write_text(json.dumps({"mutmut": seconds, "cut": cut}))
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {
        "mutmut": 0.0, "cut": False}
    status = verdicts()
    todo = {n: t for n, t in KILLED_BY.items() if n in set(names)}
    print(f"checking that {len(todo)} earlier survivors fail their named test", flush=True)
    with ThreadPoolExecutor(args.max_children) as pool:
        verified = dict(zip(todo, pool.map(kills, todo, todo.values())))
    if not args.report_only:
        timing["total"] = time.monotonic() - t0
        timing_file.write_text(json.dumps(timing))
    timing.setdefault("total", timing["mutmut"])
    text = report(modules, status, verified, timing, args)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)  # atomic: a reader sees the old report or the new one
    print(next((ln for ln in text.splitlines() if ln.startswith("**Engine")), ""))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
