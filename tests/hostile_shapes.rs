//! Issue 21: request shapes whose handling must cost the same per byte at any size (see
//! benches/workloads/shapes.rs, and the complexity bench in BENCHMARKS.md), each answered
//! within `SHAPE_BOUND`, on both protocols.
//!
//! On 3.x a state whose `TypedValue` occurs twice carries a merged value: the merged shapes
//! took 82 to 113 s in a debug build of 4267bea, whose decoder searched every merged value
//! on each repeat of a state name and on each read of a state's value. On 2.2 a state's
//! value is `bytes`, of which the last occurrence counts: nothing is merged, and 4267bea
//! passes there too. The other shapes guard the linear decoding of the rest of the request.

mod support;

use statefun_sync::ProtocolVersion::{self, V2, V3};
use statefun_sync::{RequestReplyHandler, StatefulFunctions};
use support::hostile::{assert_answered_in_time, handle_within, SHAPE_BOUND};
use support::shapes::{self, Shape};

/// The size of the merged shapes' requests: a quarter of the default body limit.
const MERGED_SIZE: usize = 8 << 20;

/// The size of the other shapes' requests.
const SHAPE_SIZE: usize = 4 << 20;

const BOTH: [ProtocolVersion; 2] = [V2, V3];

#[test]
fn states_with_two_values_then_a_repeated_name_are_answered_in_linear_time() {
    // The shape: D states whose `state_value` occurs twice (merged, on 3.x), then
    // 10 D repeats of one other name.
    for version in BOTH {
        let shaped = assert_answered_in_time(Shape::MergedThenRepeated, version, MERGED_SIZE);
        assert!(shaped.states.len() > 40_000, "{}", shaped.states.len());
    }
}

#[test]
fn states_whose_value_occurs_four_times_are_read_in_linear_time() {
    // 99,999 distinct states, each with a value merged from four occurrences (3.x), all
    // read; then more with the same names, whose values replace the first.
    for version in BOTH {
        let shaped = assert_answered_in_time(Shape::Merged, version, MERGED_SIZE);
        assert_eq!(shaped.states.len(), shapes::MAX_DISTINCT);
    }
}

#[cfg(feature = "metrics")]
#[test]
fn with_metrics_states_with_two_values_then_a_repeated_name_are_counted_in_linear_time() {
    for version in BOTH {
        // A function that reads no state: with `with_metrics` the handler itself sums the
        // bytes of every state's value, merged or not (4267bea searched the merged values
        // for each state there too).
        let shaped = Shape::MergedThenRepeated.build(version, MERGED_SIZE);
        let mut functions = StatefulFunctions::new();
        functions.bind(&shaped.typename, |_, _| Ok(())).unwrap();
        let metrics = statefun_sync::metrics::Metrics::new();
        let handler = match version {
            V2 => RequestReplyHandler::v2(functions),
            _ => RequestReplyHandler::v3(functions).unwrap(),
        }
        .with_metrics(&metrics);

        let what = format!("merged_then_repeated on {version}, with metrics");
        let (reply, took) = handle_within(handler, shaped.body, SHAPE_BOUND, &what);
        reply.unwrap();
        eprintln!("{what}: answered in {took:?}");

        let value = shapes::value(version, "t/x", &[7]).len();
        let read = match version {
            // Each state's value is its last occurrence, one `Any`.
            V2 => value * shaped.states.len(),
            // Each merged state's value is its two `TypedValue`s; the repeated one's is one.
            _ => 2 * value * (shaped.states.len() - 1) + value,
        };
        let line = format!(
            "statefun_function_state_read_bytes_total{{function_type=\"{}\"}} {read}\n",
            shaped.typename
        );
        assert!(metrics.render().contains(&line), "{what}: {line}");
    }
}

#[test]
fn repeated_state_names_are_answered_in_linear_time() {
    for version in BOTH {
        assert_answered_in_time(Shape::Repeated, version, SHAPE_SIZE);
    }
}

#[test]
fn unknown_fields_at_every_level_are_skipped_in_linear_time() {
    for version in BOTH {
        for shape in [
            Shape::UnknownTop,
            Shape::UnknownBatch,
            Shape::UnknownState,
            Shape::UnknownInvocation,
            Shape::UnknownStateValue,
            Shape::UnknownArgument,
        ] {
            assert_answered_in_time(shape, version, SHAPE_SIZE);
        }
    }
}

#[test]
fn unknown_groups_nested_99_deep_and_repeated_are_skipped_in_linear_time() {
    for version in BOTH {
        assert_answered_in_time(Shape::DeepGroups, version, SHAPE_SIZE);
    }
}

#[test]
fn many_invocations_are_answered_in_linear_time() {
    for version in BOTH {
        // Within the default `max_invocations`.
        let shaped = assert_answered_in_time(Shape::Invocations, version, 3 << 20);
        assert!(shaped.invocations > 80_000, "{}", shaped.invocations);
    }
}

#[test]
fn long_names_ids_and_typenames_are_answered_in_linear_time() {
    for version in BOTH {
        for shape in [
            Shape::LongStateNames,
            Shape::LongAddress,
            Shape::LongTypenames,
        ] {
            assert_answered_in_time(shape, version, SHAPE_SIZE);
        }
    }
}
