defmodule H2Flow.Native do
  @moduledoc false
  # NIF stubs for native/h2flow_nif; loading priv/native/libh2flow_nif-<profile> replaces them.

  # The cargo profile is fixed when this module is compiled, by the same rule the Mix compiler
  # used to build and install the library for this Mix environment (dev for :dev and :test,
  # release for :prod and :bench); each environment compiles its own copy of this module.
  @profile Mix.Tasks.Compile.H2flowNative.profile()
  @lib_name Mix.Tasks.Compile.H2flowNative.lib_name(@profile)

  @on_load :load_nif

  @doc false
  def load_nif do
    case :code.priv_dir(:h2flow) do
      {:error, :bad_name} ->
        :logger.error(~c"h2flow: no priv directory for :h2flow (is it in the code path?)")
        {:error, :no_priv_dir}

      priv ->
        path = :filename.join([priv, ~c"native", String.to_charlist(@lib_name)])

        case :erlang.load_nif(path, 0) do
          :ok ->
            :ok

          {:error, {reason, text}} ->
            format = ~c"h2flow: cannot load its NIF (~p): ~ts~n~ts"
            :logger.error(format, [reason, text, hint(reason)])
            {:error, reason}
        end
    end
  end

  @doc false
  # The cargo profile of the library this module loads (benchmarks report it).
  @spec profile() :: :dev | :release
  def profile, do: @profile

  defp hint(:load_failed), do: ~c"`mix compile` builds it (with cargo)."
  defp hint(:bad_lib), do: ~c"H2Flow.Native needs a stub for every NIF the library exports."
  defp hint(_), do: ~c""

  # One stub per NIF exported by native/h2flow_nif, with the same name and arity.

  def nif_loaded, do: err()
  def engine_new(_), do: err()
  def engine_recv(_, _, _), do: err()
  def engine_new_client(_), do: err()
  def engine_request(_, _, _, _), do: err()
  def engine_consume(_, _, _), do: err()
  def engine_read(_, _, _), do: err()
  def engine_read_timeout(_, _), do: err()
  def engine_discard(_, _), do: err()
  def engine_send_headers(_, _, _, _), do: err()
  def engine_reply(_, _, _, _, _), do: err()
  def engine_send_body(_, _, _, _), do: err()
  def engine_reset_stream(_, _, _), do: err()
  def engine_goaway(_, _, _), do: err()
  def engine_flush(_), do: err()
  def engine_check_timeouts(_), do: err()
  def engine_stats(_), do: err()
  def engine_info(_), do: err()
  def engine_defaults, do: err()
  def fields_check(_), do: err()
  def h1_new(_), do: err()
  def h1_defaults, do: err()
  def h1_recv(_, _, _), do: err()
  def h1_read(_, _, _), do: err()
  def h1_read_timeout(_, _), do: err()
  def h1_discard(_, _), do: err()
  def h1_send_body(_, _, _, _), do: err()
  def h1_reply(_, _, _, _, _), do: err()
  def h1_report_to(_, _), do: err()
  def h1_close_report(_), do: err()
  def h1_read_body(_, _), do: err()
  def h1_consume(_, _, _), do: err()
  def h1_send_headers(_, _, _, _), do: err()
  def h1_send_data(_, _, _, _), do: err()
  def h1_abort(_, _), do: err()
  def h1_shutdown(_), do: err()
  def h1_flush(_), do: err()
  def h1_check_timeouts(_), do: err()
  def h1_info(_), do: err()
  def h1_stats(_), do: err()
  def h1_detect(_, _), do: err()
  def h1_http2_engine(_, _, _, _), do: err()
  def totals_new, do: err()
  def totals_read(_), do: err()
  def totals_join(_), do: err()
  def totals_leave(_), do: err()
  def engine_report_to(_, _), do: err()
  def engine_flush_reporting(_), do: err()
  def engine_close_report(_), do: err()
  def engine_client_defaults, do: err()
  def scheduler_new(_), do: err()
  def scheduler_initial_credit(_), do: err()
  def scheduler_open_stream(_, _, _, _), do: err()
  def scheduler_data(_, _, _, _, _), do: err()
  def scheduler_consume(_, _, _), do: err()
  def scheduler_end_stream(_, _), do: err()
  def scheduler_close_stream(_, _), do: err()
  def scheduler_flush(_), do: err()
  def scheduler_info(_), do: err()
  def scheduler_stream_remaining(_, _), do: err()
  def scheduler_data_flush(_, _, _, _, _), do: err()
  def scheduler_consume_flush(_, _, _), do: err()
  def cowboy_new(_), do: err()
  def cowboy_open(_, _, _, _, _), do: err()
  def cowboy_data(_, _, _, _, _), do: err()
  def cowboy_read(_, _, _, _), do: err()
  def cowboy_read_timeout(_, _, _), do: err()
  def cowboy_info_other(_, _, _), do: err()
  def cowboy_carry(_, _, _), do: err()
  def cowboy_terminate(_, _, _), do: err()
  def cowboy_info(_), do: err()

  defp err, do: :erlang.nif_error(:nif_not_loaded)
end
