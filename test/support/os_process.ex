defmodule H2Flow.Test.OSProcess do
  @moduledoc false
  # Finding and killing the OS processes of a browser the tests started, from /proc: its
  # process group (a port program leads its own) and anything whose arguments name its
  # directory (helpers that start sessions of their own).

  @doc """
  SIGKILL to the group `os_pid` and to every process naming `dir`, then waits (bounded) until
  none of them is left; warns naming `what` if some outlive it.
  """
  def kill_all(os_pid, dir, what) do
    _ = System.cmd("kill", ["-KILL", "--", "-#{os_pid}"], stderr_to_stdout: true)
    pids = processes(os_pid, dir)

    _ =
      if pids != [],
        do: System.cmd("kill", ["-KILL" | Enum.map(pids, &"#{&1}")], stderr_to_stdout: true)

    wait_gone(os_pid, dir, what, System.monotonic_time(:millisecond) + 5_000)
  end

  defp wait_gone(os_pid, dir, what, deadline) do
    cond do
      processes(os_pid, dir) == [] ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        IO.warn("#{what}'s processes #{inspect(processes(os_pid, dir))} outlived SIGKILL")

      true ->
        Process.sleep(20)
        wait_gone(os_pid, dir, what, deadline)
    end
  end

  @doc "The live (not zombie) processes of the group `os_pid` or naming `dir`."
  def processes(os_pid, dir) do
    group = Integer.to_string(os_pid)

    for proc <- Path.wildcard("/proc/[0-9]*"),
        {:ok, stat} <- [File.read(Path.join(proc, "stat"))],
        [status, _ppid, pgrp | _] <- [stat_fields(stat)],
        status != "Z",
        pgrp == group or cmdline(proc) =~ dir do
      proc |> Path.basename() |> String.to_integer()
    end
  end

  defp cmdline(proc) do
    case File.read(Path.join(proc, "cmdline")) do
      {:ok, args} -> args
      {:error, _} -> ""
    end
  end

  # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so the fields start
  # after the last ") ".
  defp stat_fields(text) do
    case :binary.matches(text, ") ") do
      [] ->
        []

      matches ->
        {at, _} = List.last(matches)
        text |> binary_part(at + 2, byte_size(text) - at - 2) |> String.split(" ")
    end
  end
end
