defmodule H2Flow.Test.FunHandler do
  @moduledoc false
  # Test handler: its behaviour is the function given as :handler_opts (a closure over the
  # test's pid), called with the request; it returns the request. With `{fun, notify}` as
  # :handler_opts, terminate/3 reports `{:terminate, stream_id, reason}` to `notify`.

  @behaviour H2Flow.Handler

  @impl true
  def init(req, {fun, _notify} = state), do: {:ok, fun.(req), state}
  def init(req, fun) when is_function(fun, 1), do: {:ok, fun.(req), fun}

  @impl true
  def terminate(reason, req, {_fun, notify}),
    do: send(notify, {:terminate, H2Flow.Req.stream_id(req), reason})

  def terminate(_reason, _req, _fun), do: :ok
end

defmodule H2Flow.Test.ServerHelpers do
  @moduledoc false
  # Shared by the server tests: servers on port 0 under the test supervisor, raw-client
  # connections, bounded polling, handler barriers, and the python-hyper h2 scenarios.

  import ExUnit.Assertions

  alias H2Flow.Test.{FunHandler, H2Client}

  @doc "Starts a server whose handler runs `fun`; returns `{server, port}`."
  def start_server!(fun, opts \\ []) do
    opts =
      Keyword.merge([handler: FunHandler, handler_opts: fun, port: 0, ip: {127, 0, 0, 1}], opts)

    server = ExUnit.Callbacks.start_supervised!({H2Flow, opts})
    {server, H2Flow.port(server)}
  end

  @doc """
  Connects the raw client: preface and `settings`, then reads the server's SETTINGS (and what
  came with it) and acknowledges them.
  """
  def connect!(port, settings \\ [], opts \\ []) do
    {:ok, conn} = H2Client.connect("127.0.0.1", port, opts)
    :ok = H2Client.send_preface(conn, settings)
    {:ok, conn, _} = H2Client.recv_until(conn, &match?({:settings, false, _}, &1))
    conn
  end

  @doc "Reads frames until the server's ACK of a PING: everything it wrote before is read."
  def sync!(conn, timeout \\ 5_000) do
    data = :crypto.strong_rand_bytes(8)
    :ok = H2Client.send_ping(conn, data)
    {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:ping, true, ^data}, &1), timeout)
    {conn, frames}
  end

  @doc "Polls `fun` until it returns a truthy value (returned), for at most `timeout` ms."
  def eventually(fun, timeout \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(fun, deadline, timeout)
  end

  defp poll(fun, deadline, timeout) do
    case fun.() do
      result when result not in [nil, false] ->
        result

      _ ->
        if System.monotonic_time(:millisecond) > deadline,
          do: flunk("condition not met within #{timeout} ms"),
          else: Process.sleep(5)

        poll(fun, deadline, timeout)
    end
  end

  @doc """
  Monitors a live process; returns once the monitor is in place. A monitor is a signal: a
  process killed before it handles it reports `:noproc`, not its exit reason. `Process.alive?/1`
  is answered only after the signals sent to the process before it, so the reason of any later
  exit is the real one.
  """
  def monitor!(pid) do
    ref = Process.monitor(pid)
    assert Process.alive?(pid), "\#{inspect(pid)} exited before it could be monitored"
    ref
  end

  @doc "The server's live connection processes."
  def connections(server) do
    sup = H2Flow.Server.child(server, :connections)
    for {_, pid, _, _} <- DynamicSupervisor.which_children(sup), is_pid(pid), do: pid
  end

  @doc "The one live connection of a server (waits for it to be there)."
  def connection!(server) do
    # A connection that just exited can still be listed by its supervisor for a moment.
    live = fn -> Enum.filter(connections(server), &Process.alive?/1) end
    [pid] = eventually(fn -> match?([_], live.()) && live.() end)
    pid
  end

  @doc "The live handler processes of a connection (linked to it, running H2Flow.Stream)."
  def handlers(conn_pid) do
    case Process.info(conn_pid, :links) do
      {:links, links} ->
        for pid <- links,
            is_pid(pid),
            Process.info(pid, :initial_call) == {:initial_call, {H2Flow.Stream, :run, 4}},
            do: pid

      nil ->
        []
    end
  end

  @doc """
  In a handler: tells `test` it is waiting (`{:waiting, pid, req}`) and blocks until the test
  sends `:go`.
  """
  def wait_for_go(test, req) do
    send(test, {:waiting, self(), req})

    receive do
      :go -> :ok
    end
  end

  @doc "In the test: collects `n` waiting handlers; returns `[{pid, req}]` by stream id."
  def waiting(n, timeout \\ 5_000) do
    for _ <- 1..n//1 do
      assert_receive {:waiting, pid, req}, timeout
      {pid, req}
    end
    |> Enum.sort_by(fn {_, req} -> req.stream_id end)
  end

  @doc "Counters summed over the server's connections (see H2Flow.stats/1)."
  def stat(server, key), do: Map.fetch!(H2Flow.stats(server), key)

  @doc """
  Starts a scenario of test/support/h2_scenarios.py against `port` in a task; progress lines
  come to the caller as `{:h2_scenario, line}`, and `python_input/2` writes a line to the
  script. `Task.await/2` gives the result term.
  """
  def python_task(scenario, port, args) do
    test = self()
    script = Path.expand("h2_scenarios.py", __DIR__)
    python = System.find_executable("python3") || flunk("python3 is not on PATH")
    args = [script, scenario, "127.0.0.1", Integer.to_string(port) | Enum.map(args, &to_string/1)]

    Task.async(fn ->
      port =
        Port.open({:spawn_executable, python}, [
          :binary,
          :exit_status,
          :stderr_to_stdout,
          {:line, 1_000_000},
          args: args
        ])

      collect(port, test, [], "")
    end)
  end

  @doc "Runs a scenario of test/support/h2_scenarios.py to its end; returns its result."
  def python!(scenario, port, args, timeout \\ 40_000) do
    scenario |> python_task(port, args) |> Task.await(timeout)
  end

  @doc "Writes `line` to the standard input of a scenario started by `python_task/3`."
  def python_input(%Task{pid: pid}, line), do: send(pid, {:h2_scenario_input, line <> "\n"})

  defp collect(port, test, lines, partial) do
    receive do
      {:h2_scenario_input, data} ->
        true = Port.command(port, data)
        collect(port, test, lines, partial)

      {^port, {:data, {:noeol, part}}} ->
        collect(port, test, lines, partial <> part)

      {^port, {:data, {:eol, part}}} ->
        line = partial <> part
        send(test, {:h2_scenario, line})
        collect(port, test, [line | lines], "")

      {^port, {:exit_status, 0}} ->
        {result, _} = Code.eval_string(hd(lines))
        result

      {^port, {:exit_status, status}} ->
        flunk("h2_scenarios.py exited with #{status}:\n" <> Enum.join(Enum.reverse(lines), "\n"))
    end
  end
end
