defmodule H2Flow.Test.Interop do
  @moduledoc false
  # The interop suite's plumbing: a server with H2Flow.Test.InteropHandler over h2c or TLS
  # (the certificate of H2Flow.TLS.self_signed/1, its CA written as PEM for the client to
  # trust), client programs run under a deadline (a stall fails the test with the client's
  # output instead of hanging it), and the checks every run ends with: no defence fired, no
  # stream refused beyond what the limit implies, nothing logged at :warning or above.

  import ExUnit.Assertions

  @clients Path.expand("../interop/clients", __DIR__)

  @doc "Where the client programs live (test/interop/clients)."
  def clients_dir, do: @clients

  @doc """
  Starts a server under the test supervisor; returns a map with `:server`, `:port`,
  `:transport`, `:url` (`http://127.0.0.1:port` or `https://localhost:port`), `:host` and
  `:ca` (the CA's PEM file) and `:tls` (the server's `:ssl` options), both `nil` for h2c.
  `dir` holds the CA file.
  """
  def start!(transport, dir, opts \\ []) when transport in [:tcp, :tls] do
    base = [handler: H2Flow.Test.InteropHandler, port: 0, ip: {127, 0, 0, 1}]

    {tls, ca} =
      if transport == :tls do
        tls = H2Flow.TLS.self_signed(["localhost", "127.0.0.1"])
        ca = Path.join(dir, "ca-#{System.unique_integer([:positive])}.pem")
        File.write!(ca, H2Flow.TLS.ca_pem(tls))
        {tls, ca}
      else
        {nil, nil}
      end

    tls_opts = if tls, do: [transport: :tls, tls: tls], else: []

    server =
      ExUnit.Callbacks.start_supervised!({H2Flow, base ++ tls_opts ++ opts}, id: make_ref())

    port = H2Flow.port(server)
    scheme = if transport == :tls, do: "https", else: "http"

    %{
      server: server,
      port: port,
      transport: transport,
      host: "127.0.0.1",
      url: "#{scheme}://127.0.0.1:#{port}",
      ca: ca,
      tls: tls
    }
  end

  @doc """
  Runs `exe` with `args` and returns `{output, exit_status}` (stdout and stderr together).
  Fails the test when it has not exited after `timeout` ms: the whole process group is killed
  and the message names `what` and shows the end of the output. Options: `:env` (a map),
  `:cd`, `:timeout` (default 120,000).
  """
  def run!(what, exe, args, opts \\ []) do
    timeout = Keyword.get(opts, :timeout, 120_000)
    path = System.find_executable(exe) || flunk("#{exe} is not on PATH (#{what})")
    env = for {k, v} <- Keyword.get(opts, :env, %{}), do: {to_charlist(k), to_charlist(v)}

    port_opts =
      [:binary, :exit_status, :stderr_to_stdout, args: args, env: env] ++
        if(opts[:cd], do: [cd: opts[:cd]], else: [])

    port = Port.open({:spawn_executable, path}, port_opts)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    deadline = System.monotonic_time(:millisecond) + timeout
    started = System.monotonic_time(:millisecond)

    case collect(port, [], deadline) do
      {:exit, status, output} ->
        {output, status}

      {:timeout, output} ->
        # Port programs lead their own process group: this kills the client and its children.
        _ = System.cmd("kill", ["-KILL", "--", "-#{os_pid}"], stderr_to_stdout: true)
        elapsed = System.monotonic_time(:millisecond) - started

        flunk(
          "#{what} did not finish within #{timeout} ms (killed after #{elapsed} ms): a stall.\n" <>
            "Its output, last lines:\n" <> tail(output, 40)
        )
    end
  end

  defp collect(port, acc, deadline) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, data}} -> collect(port, [acc | data], deadline)
      {^port, {:exit_status, status}} -> {:exit, status, IO.iodata_to_binary(acc)}
    after
      left ->
        Port.close(port)
        {:timeout, IO.iodata_to_binary(acc)}
    end
  end

  @doc "The last `n` lines of `text`."
  def tail(text, n), do: text |> String.split("\n") |> Enum.take(-n) |> Enum.join("\n")

  @doc """
  The JSON result a client printed on a line of its own starting with `RESULT `; fails with
  the output when there is none or the client exited with a non-zero status.
  """
  def result!(what, {output, status}) do
    line =
      output
      |> String.split("\n")
      |> Enum.reverse()
      |> Enum.find(&String.starts_with?(&1, "RESULT "))

    cond do
      line == nil ->
        flunk("#{what} exited with #{status} and printed no result:\n" <> tail(output, 40))

      status != 0 ->
        flunk("#{what} exited with #{status}:\n" <> tail(output, 40))

      true ->
        H2Flow.Test.JSON.decode!(String.replace_prefix(line, "RESULT ", ""))
    end
  end

  @doc """
  Runs `fun` (a client run against `server`) while capturing the log, and keeps capturing
  until the server has settled (no stream open; bounded): what its handlers and connections
  log as they finish counts too. Returns `{fun's result, log}`.
  """
  def capture(server, fun) do
    ExUnit.CaptureLog.with_log(fn ->
      result = fun.()
      _ = H2Flow.Test.ServerHelpers.eventually(fn -> settled(server) end, 30_000)
      result
    end)
  end

  @doc """
  The checks every client run ends with, on the server's stats (waits, bounded, until no
  stream is open: handlers may still be finishing) and the log captured meanwhile. Options:
  `:refused` (the streams the limit may refuse, default 0). Returns the stats.
  """
  def assert_clean!(server, log, opts \\ []) do
    refused = Keyword.get(opts, :refused, 0)
    stats = H2Flow.Test.ServerHelpers.eventually(fn -> settled(server) end, 30_000)

    assert stats.defences_triggered == 0,
           "a defence fired: #{inspect(stats.defences)}"

    assert stats.streams_refused <= refused,
           "#{stats.streams_refused} streams refused, at most #{refused} expected"

    assert stats.handler_crashes == 0
    assert_quiet_log!(log)
    stats
  end

  defp settled(server) do
    stats = H2Flow.stats(server)
    stats.open_streams == 0 && stats
  end

  @loud ~r/\[(warning|warn|error|critical|alert|emergency)\]/

  @doc """
  Fails when the captured log has a line at :warning or above. The message shows the first
  few such lines and the line after each (the reason), not the whole entries: a crash report
  may carry state that must not be copied anywhere (issue 14 #2 printed a private key).
  """
  def assert_quiet_log!(log) do
    lines = String.split(log, "\n")

    loud =
      for {line, i} <- Enum.with_index(lines), line =~ @loud do
        line <> "\n    " <> String.slice(Enum.at(lines, i + 1, ""), 0, 300)
      end

    assert loud == [],
           "#{length(loud)} entries logged at :warning or above, the first ones:\n" <>
             Enum.join(Enum.take(loud, 3), "\n")
  end

  @doc """
  Fails when the log shows the server's private key (from `tls`, options of
  `H2Flow.TLS.self_signed/1`) the way a crash report prints it: as a list of byte values.
  """
  def refute_key_material!(log, tls) do
    {:ECPrivateKey, der} = Keyword.fetch!(tls, :key)
    secret = :public_key.der_decode(:ECPrivateKey, der) |> elem(2)

    for bytes <- [binary_part(der, 0, 12), binary_part(secret, 0, 8)] do
      shown = bytes |> :binary.bin_to_list() |> Enum.join(", ")
      refute log =~ shown, "the log shows the server's private key (#{byte_size(bytes)} bytes)"
    end

    :ok
  end

  @doc "Counts the entries of the captured log at :warning or above."
  def loud_lines(log), do: log |> String.split("\n") |> Enum.count(&(&1 =~ @loud))

  @doc "Prints a timing line for the README and the report."
  def report(line), do: IO.puts("\n[interop] " <> line)

  @doc "Milliseconds `fun` took, and its result."
  def timed(fun) do
    started = System.monotonic_time(:millisecond)
    result = fun.()
    {System.monotonic_time(:millisecond) - started, result}
  end
end
