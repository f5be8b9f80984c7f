defmodule H2Flow.Bench.IdleMemory do
  @moduledoc false
  # Memory per idle connection: bench/idle_clients.exs opens the connections from another OS
  # process (its sockets must not count), completes the handshake and goes quiet; this VM's
  # memory is taken before and after, each time after a garbage collection of every process.

  @doc false
  @spec run(H2Flow.server(), :inet.port_number(), pos_integer(), Path.t()) :: map()
  def run(server, port, n, script) do
    # A few connections first, so that what happens once (loading the connection code, the
    # first allocator carriers) is not counted as per-connection memory.
    port |> open(20, script) |> close(server)

    before = snapshot()
    client = open(port, n, script)
    # Idle connections hibernate after a tick without traffic (1 s): measure them as they
    # stay, not as the handshake left them.
    Process.sleep(2_500)
    later = snapshot()
    new_processes = later.processes -- before.processes
    new_ports = (later.ports -- before.ports) -- [client]

    result = %{
      rss: later.rss - before.rss,
      erlang: later.erlang[:total] - before.erlang[:total],
      erlang_processes: later.erlang[:processes] - before.erlang[:processes],
      erlang_binary: later.erlang[:binary] - before.erlang[:binary],
      new_processes: length(new_processes),
      process_info: sum_info(new_processes, &Process.info(&1, :memory)),
      port_info: sum_info(new_ports, &:erlang.port_info(&1, :memory))
    }

    close(client, server)
    result
  end

  # Returns once the n connections are idle: the script is ready once every connection
  # answered its PING, sent after everything else (polling H2Flow.stats/1 instead would make
  # every connection build a stats map, and the garbage would count as its memory).
  defp open(port, n, script) do
    elixir = System.find_executable("elixir") || Mix.raise("elixir is not on PATH")

    client =
      Port.open({:spawn_executable, elixir}, [
        :binary,
        :exit_status,
        {:line, 4096},
        args: [script, Integer.to_string(port), Integer.to_string(n)]
      ])

    await_ready(client)
    client
  end

  defp close(client, server) do
    Port.close(client)
    await(fn -> H2Flow.stats(server).connections == 0 end, "connections to close")
  end

  defp snapshot do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)

    %{
      rss: rss(),
      erlang: :erlang.memory(),
      processes: Process.list(),
      ports: Port.list()
    }
  end

  defp sum_info(items, info) do
    Enum.sum(for item <- items, {:memory, bytes} <- [info.(item)], do: bytes)
  end

  defp rss do
    with {:ok, status} <- File.read("/proc/self/status"),
         [_, kb] <- Regex.run(~r/^VmRSS:\s+(\d+) kB/m, status) do
      String.to_integer(kb) * 1024
    else
      _ -> 0
    end
  end

  defp await_ready(client) do
    receive do
      {^client, {:data, {:eol, "ready"}}} ->
        :ok

      {^client, {:data, {_, line}}} ->
        Mix.shell().info("  idle_clients: " <> line)
        await_ready(client)

      {^client, {:exit_status, s}} ->
        Mix.raise("bench/idle_clients.exs exited with status #{s}")
    after
      120_000 -> Mix.raise("bench/idle_clients.exs did not get ready in 120 s")
    end
  end

  defp await(done?, what, tries \\ 3_000) do
    cond do
      done?.() ->
        :ok

      tries == 0 ->
        Mix.raise("timed out waiting for #{what}")

      true ->
        Process.sleep(10)
        await(done?, what, tries - 1)
    end
  end
end
