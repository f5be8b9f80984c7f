defmodule H2Flow.Test.LogForwarder do
  @moduledoc false
  # An Erlang :logger handler that sends every log event, with its metadata, to a test
  # process: `attach/0` in a test, which receives `{:log, level, message, metadata}`.

  @doc "Forwards log events to the caller until the test ends."
  def attach do
    id = :"h2flow_log_forwarder_#{System.unique_integer([:positive])}"
    :ok = :logger.add_handler(id, __MODULE__, %{config: %{pid: self()}, level: :all})
    ExUnit.Callbacks.on_exit(fn -> :logger.remove_handler(id) end)
    :ok
  end

  @doc false
  def log(%{level: level, msg: msg, meta: meta}, %{config: %{pid: pid}}) do
    send(pid, {:log, level, message(msg), meta})
  end

  defp message({:string, chardata}), do: IO.chardata_to_string(chardata)
  defp message({:report, report}), do: inspect(report)
  defp message({format, args}), do: format |> :io_lib.format(args) |> IO.chardata_to_string()
end
