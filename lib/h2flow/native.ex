defmodule H2Flow.Native do
  @moduledoc false
  # NIF stubs for native/h2flow_nif; loading priv/native/libh2flow_nif replaces each stub.

  @on_load :load_nif

  @doc false
  def load_nif do
    case :code.priv_dir(:h2flow) do
      {:error, :bad_name} ->
        :logger.error(~c"h2flow: no priv directory for :h2flow (is it in the code path?)")
        {:error, :no_priv_dir}

      priv ->
        case :erlang.load_nif(:filename.join(priv, ~c"native/libh2flow_nif"), 0) do
          :ok ->
            :ok

          {:error, {reason, text}} ->
            format = ~c"h2flow: cannot load its NIF (~p): ~ts~n~ts"
            :logger.error(format, [reason, text, hint(reason)])
            {:error, reason}
        end
    end
  end

  defp hint(:load_failed), do: ~c"`mix compile` builds it (with cargo)."
  defp hint(:bad_lib), do: ~c"H2Flow.Native needs a stub for every NIF the library exports."
  defp hint(_), do: ~c""

  # One stub per NIF exported by native/h2flow_nif, with the same name and arity.

  def nif_loaded, do: err()
  def engine_new(_), do: err()
  def engine_recv(_, _), do: err()
  def engine_consume(_, _, _), do: err()
  def engine_send_headers(_, _, _, _), do: err()
  def engine_send_data(_, _, _, _), do: err()
  def engine_reset_stream(_, _, _), do: err()
  def engine_goaway(_, _, _), do: err()
  def engine_flush(_), do: err()
  def engine_check_timeouts(_), do: err()
  def engine_stats(_), do: err()
  def engine_info(_), do: err()
  def frame_decode(_, _), do: err()
  def frame_encode(_), do: err()
  def frame_encode_header_block(_, _, _, _), do: err()
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

  defp err, do: :erlang.nif_error(:nif_not_loaded)
end
