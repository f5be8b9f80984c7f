defmodule H2Flow.Server.Drainer do
  @moduledoc false
  # Drains the server when it stops: it is stopped right after the acceptors (see
  # H2Flow.Server), and on its way out closes the listen socket, sends GOAWAY (NO_ERROR, the
  # last stream id) to every connection and waits until they have closed, for at most
  # :shutdown_timeout (then each connection stops its handlers and closes) plus the time they
  # take to close.

  use GenServer

  # A connection that drained lingers up to a second after its GOAWAY (H2Flow.Connection).
  @close_margin 1_500

  def child_spec({server, config}) do
    %{
      id: __MODULE__,
      start: {__MODULE__, :start_link, [{server, config}]},
      # The supervisor waits for the drain, never longer.
      shutdown: config.shutdown_timeout + @close_margin + 500
    }
  end

  def start_link({server, config}), do: GenServer.start_link(__MODULE__, {server, config})

  @impl true
  def init({server, config}) do
    Process.flag(:trap_exit, true)
    {:ok, %{server: server, drain_ms: config.shutdown_timeout}, {:continue, :siblings}}
  end

  # The siblings are known once the server supervisor has started them all; it answers then.
  # A server stopped in that very moment waits for this call: it gives up after a while, and
  # there is nothing to drain yet.
  @impl true
  def handle_continue(:siblings, state) do
    children = GenServer.call(state.server, :which_children, 5_000)
    find = fn id -> Enum.find_value(children, fn {i, pid, _, _} -> i == id && pid end) end

    {:noreply,
     Map.merge(state, %{listener: find.(H2Flow.Server.Listener), conns: find.(:connections)})}
  catch
    :exit, _ -> {:noreply, state}
  end

  @impl true
  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{listener: listener, conns: conns, drain_ms: drain_ms})
      when is_pid(listener) and is_pid(conns) do
    :ok = GenServer.call(listener, :close)

    refs =
      for {_, pid, _, _} <- DynamicSupervisor.which_children(conns), is_pid(pid) do
        ref = Process.monitor(pid)
        send(pid, {:shutdown, drain_ms})
        ref
      end

    deadline = System.monotonic_time(:millisecond) + drain_ms + @close_margin
    Enum.each(refs, &await_down(&1, deadline))
  end

  def terminate(_reason, _state), do: :ok

  defp await_down(ref, deadline) do
    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    after
      max(deadline - System.monotonic_time(:millisecond), 0) -> Process.demonitor(ref, [:flush])
    end
  end
end
