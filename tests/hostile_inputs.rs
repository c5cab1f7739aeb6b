//! The hostile-checkpoint corpus (`tests/support/hostile.rs`) through the CLI: every case exits 2
//! with nothing on stdout, names the file and the key or tensor on stderr, leaves nothing at the
//! output path (not even a staging directory beside it), and leaves the input byte-identical.

mod support;

use std::path::Path;

use rstest::rstest;
use support::hostile::{self, Case};
use support::{names, scratch, snapshot};

#[rstest]
#[case::alias_same_with_force(hostile::alias_same_with_force)]
#[case::alias_same_without_force(hostile::alias_same_without_force)]
#[case::alias_same_through_dots(hostile::alias_same_through_dots)]
#[case::alias_parent_with_force(hostile::alias_parent_with_force)]
#[case::alias_inside(hostile::alias_inside)]
#[case::alias_same_dry_run(hostile::alias_same_dry_run)]
#[case::alias_same_config_only(hostile::alias_same_config_only)]
#[cfg_attr(unix, case::alias_symlink_to_input(hostile::alias_symlink_to_input))]
#[cfg_attr(unix, case::alias_inside_through_symlink(hostile::alias_inside_through_symlink))]
#[cfg_attr(unix, case::alias_parent_through_symlink(hostile::alias_parent_through_symlink))]
#[case::layers_a_trillion(hostile::layers_a_trillion)]
#[case::layers_more_than_tensors(hostile::layers_more_than_tensors)]
#[case::layers_negative(hostile::layers_negative)]
#[case::hidden_size_huge(hostile::hidden_size_huge)]
#[case::head_product_overflows(hostile::head_product_overflows)]
#[case::vocab_beyond_i128(hostile::vocab_beyond_i128)]
#[case::epsilon_nan_literal(hostile::epsilon_nan_literal)]
#[case::rope_theta_infinity_literal(hostile::rope_theta_infinity_literal)]
#[case::epsilon_beyond_f64(hostile::epsilon_beyond_f64)]
#[case::deeply_nested_json(hostile::deeply_nested_json)]
#[case::config_not_a_mapping(hostile::config_not_a_mapping)]
#[case::config_missing(hostile::config_missing)]
#[cfg_attr(unix, case::config_is_a_fifo(hostile::config_is_a_fifo))]
#[case::config_huge(hostile::config_huge)]
#[cfg_attr(unix, case::config_links_outside_the_input(hostile::config_links_outside_the_input))]
#[cfg_attr(unix, case::weights_link_to_proc(hostile::weights_link_to_proc))]
#[cfg_attr(unix, case::weights_link_dangling(hostile::weights_link_dangling))]
#[cfg_attr(unix, case::weights_link_loop(hostile::weights_link_loop))]
#[cfg_attr(unix, case::metadata_is_a_fifo(hostile::metadata_is_a_fifo))]
#[cfg_attr(unix, case::force_over_the_cache_blobs(hostile::force_over_the_cache_blobs))]
#[cfg_attr(
    unix,
    case::force_over_a_hard_link_of_the_input(hostile::force_over_a_hard_link_of_the_input)
)]
#[cfg_attr(unix, case::config_command_on_a_fifo(hostile::config_command_on_a_fifo))]
#[cfg_attr(unix, case::config_command_on_a_device(hostile::config_command_on_a_device))]
#[cfg_attr(
    unix,
    case::config_command_on_a_kernel_file(hostile::config_command_on_a_kernel_file)
)]
#[case::config_many_entries(hostile::config_many_entries)]
#[case::config_dense_entries(hostile::config_dense_entries)]
#[case::carried_too_deep_for_metadata(hostile::carried_too_deep_for_metadata)]
#[case::carried_too_large_for_metadata(hostile::carried_too_large_for_metadata)]
#[case::carried_too_large_for_config_json(hostile::carried_too_large_for_config_json)]
#[case::unknown_key(hostile::unknown_key)]
#[case::wrong_type(hostile::wrong_type)]
#[case::kv_heads_not_dividing(hostile::kv_heads_not_dividing)]
#[case::experts_a_trillion(hostile::experts_a_trillion)]
#[case::yaml_epsilon_infinite(hostile::yaml_epsilon_infinite)]
#[case::yaml_epsilon_nan(hostile::yaml_epsilon_nan)]
#[case::yaml_blocks_a_trillion(hostile::yaml_blocks_a_trillion)]
#[case::yaml_deeply_nested(hostile::yaml_deeply_nested)]
#[case::yaml_billion_laughs(hostile::yaml_billion_laughs)]
#[case::yaml_alias_bytes_bomb(hostile::yaml_alias_bytes_bomb)]
#[case::yaml_no_model(hostile::yaml_no_model)]
#[case::state_index_traversal(hostile::state_index_traversal)]
#[case::state_index_missing_file(hostile::state_index_missing_file)]
#[case::state_index_not_a_file_name(hostile::state_index_not_a_file_name)]
#[case::state_index_unindexed_tensor(hostile::state_index_unindexed_tensor)]
#[case::state_index_tensor_in_another_file(hostile::state_index_tensor_in_another_file)]
#[case::fast_llm_optimizer_state(hostile::fast_llm_optimizer_state)]
#[case::dtype_overflows_f16(hostile::dtype_overflows_f16)]
#[case::dtype_of_an_int_tensor(hostile::dtype_of_an_int_tensor)]
#[case::header_length_max(hostile::header_length_max)]
#[case::header_length_past_the_file(hostile::header_length_past_the_file)]
#[case::header_bomb(hostile::header_bomb)]
#[case::header_of_many_tensors(hostile::header_of_many_tensors)]
#[case::headers_past_the_checkpoint_total(hostile::headers_past_the_checkpoint_total)]
#[case::header_not_json(hostile::header_not_json)]
#[case::header_unknown_dtype(hostile::header_unknown_dtype)]
#[case::header_shape_mismatch(hostile::header_shape_mismatch)]
#[case::header_shape_overflow(hostile::header_shape_overflow)]
#[case::header_overlapping_offsets(hostile::header_overlapping_offsets)]
#[case::header_sub_byte_dtype(hostile::header_sub_byte_dtype)]
#[case::data_truncated(hostile::data_truncated)]
#[case::tensor_missing(hostile::tensor_missing)]
#[case::tensor_extra(hostile::tensor_extra)]
#[case::tensor_wrong_shape(hostile::tensor_wrong_shape)]
#[case::tensor_wrong_dtype(hostile::tensor_wrong_dtype)]
#[case::index_traversal(hostile::index_traversal)]
#[case::index_absolute_path(hostile::index_absolute_path)]
#[case::index_wrong_shard(hostile::index_wrong_shard)]
#[case::index_unindexed_tensor(hostile::index_unindexed_tensor)]
#[case::index_huge(hostile::index_huge)]
#[case::index_no_weight_map(hostile::index_no_weight_map)]
#[case::index_not_json(hostile::index_not_json)]
#[case::shard_missing(hostile::shard_missing)]
#[case::shard_tensor_wrong_shape(hostile::shard_tensor_wrong_shape)]
#[case::pickle_bin(hostile::pickle_bin)]
#[case::pickle_shards(hostile::pickle_shards)]
#[case::pickle_pt(hostile::pickle_pt)]
#[case::distributed_rank_missing(hostile::distributed_rank_missing)]
#[case::distributed_rank_beyond_the_world(hostile::distributed_rank_beyond_the_world)]
#[cfg_attr(
    unix,
    case::distributed_rank_is_a_directory(hostile::distributed_rank_is_a_directory)
)]
#[case::distributed_world_size_a_trillion(hostile::distributed_world_size_a_trillion)]
#[case::distributed_tensor_parallel_not_dividing(hostile::distributed_tensor_parallel_not_dividing)]
#[case::distributed_version_too_new(hostile::distributed_version_too_new)]
#[case::distributed_yaml_alias_bytes_bomb(hostile::distributed_yaml_alias_bytes_bomb)]
#[case::distributed_no_shards(hostile::distributed_no_shards)]
#[case::distributed_shard_size_wrong(hostile::distributed_shard_size_wrong)]
#[case::distributed_shard_dtype_wrong(hostile::distributed_shard_dtype_wrong)]
#[case::distributed_shard_missing(hostile::distributed_shard_missing)]
#[case::distributed_rank_header_bomb(hostile::distributed_rank_header_bomb)]
#[case::distributed_unknown_shard(hostile::distributed_unknown_shard)]
#[case::distributed_ranks_swapped(hostile::distributed_ranks_swapped)]
#[case::distributed_rank_identity_not_an_int(hostile::distributed_rank_identity_not_an_int)]
#[case::yaml_format_unknown(hostile::yaml_format_unknown)]
#[case::yaml_format_not_a_string(hostile::yaml_format_not_a_string)]
#[case::state_dict_read_as_distributed(hostile::state_dict_read_as_distributed)]
#[case::inspect_format_unknown(hostile::inspect_format_unknown)]
#[case::yaml_model_not_a_string(hostile::yaml_model_not_a_string)]
#[case::yaml_state_index_not_a_mapping(hostile::yaml_state_index_not_a_mapping)]
#[case::distributed_version_a_float(hostile::distributed_version_a_float)]
#[case::distributed_shards_not_a_list(hostile::distributed_shards_not_a_list)]
#[case::distributed_trainer_metadata_not_a_mapping(hostile::distributed_trainer_metadata_not_a_mapping)]
#[case::index_weight_map_not_a_mapping(hostile::index_weight_map_not_a_mapping)]
#[case::drop_key_converted(hostile::drop_key_converted)]
#[case::drop_key_parent_of_converted(hostile::drop_key_parent_of_converted)]
#[case::drop_key_dimension(hostile::drop_key_dimension)]
#[case::drop_key_config_import(hostile::drop_key_config_import)]
#[case::fast_llm_tensor_missing(hostile::fast_llm_tensor_missing)]
#[case::fast_llm_tensor_wrong_shape(hostile::fast_llm_tensor_wrong_shape)]
#[case::fast_llm_tensor_extra(hostile::fast_llm_tensor_extra)]
#[case::tensors_mostly_missing(hostile::tensors_mostly_missing)]
#[case::tensors_but_the_norms_missing(hostile::tensors_but_the_norms_missing)]
fn hostile_checkpoints_are_refused_by_name(#[case] make: fn(&Path) -> Case) {
    // One directory per case (cases run in parallel), named by the generator's address-free
    // identity: the case's position in the thread name rstest gives it.
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("case").rsplit("::").next().unwrap().to_string();
    let root = scratch("hostile", &name);
    let case = make(&root);
    let before: Vec<_> = case.unchanged.iter().map(|dir| snapshot(dir)).collect();
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let out = support::cli(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status; stderr:\n{stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for needle in &case.needles {
        assert!(stderr.contains(needle.as_str()), "`{needle}` not named:\n{stderr}");
    }
    assert!(stderr.lines().count() < 40, "a short message:\n{stderr}");
    if let Some(output) = &case.output {
        assert!(output.symlink_metadata().is_err(), "{} exists", output.display());
        let parent = output.parent().unwrap();
        let prefix = format!(".{}.", output.file_name().unwrap().to_string_lossy());
        if parent.exists() {
            let staging: Vec<String> = names(parent).into_iter().filter(|n| n.starts_with(&prefix)).collect();
            assert!(staging.is_empty(), "staging left behind: {staging:?}");
        }
    }
    for (dir, before) in case.unchanged.iter().zip(before) {
        assert!(snapshot(dir) == before, "{} changed", dir.display());
    }
}
