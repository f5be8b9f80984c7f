# A stand-in for the :telemetry library, for a VM without it (the :no_telemetry tests): the
# functions h2flow and its tests call (execute/3, which calls the attached handlers as the real
# one does; attach/4, attach_many/4 and detach/1), and an application named :telemetry, which
# H2Flow.Telemetry checks is started. Loaded by test/h2flow/telemetry_test.exs, never compiled
# with the test support: a VM with the real library must not see it.
defmodule :telemetry do
  @key {__MODULE__, :handlers}

  def attach(id, event, fun, config), do: attach_many(id, [event], fun, config)

  def attach_many(id, events, fun, config) do
    :persistent_term.put(@key, [{id, events, fun, config} | handlers()])
    :ok
  end

  def detach(id) do
    :persistent_term.put(@key, List.keydelete(handlers(), id, 0))
    :ok
  end

  def execute(event, measurements, metadata) do
    for {_id, events, fun, config} <- handlers(), event in events do
      fun.(event, measurements, metadata, config)
    end

    :ok
  end

  defp handlers, do: :persistent_term.get(@key, [])

  @doc false
  # Marks the :telemetry application started (it has no processes).
  def start_standin do
    spec = [description: ~c"telemetry stand-in", vsn: ~c"0", modules: [__MODULE__]]

    case :application.load(
           {:application, :telemetry, spec ++ [registered: [], applications: [:kernel, :stdlib]]}
         ) do
      :ok -> :ok
      {:error, {:already_loaded, :telemetry}} -> :ok
    end

    :ok = Application.ensure_started(:telemetry)
  end
end
