defmodule H2Flow.DemoTest do
  # Drives the demo server with real clients (curl, nghttp) over h2c and TLS, and checks its
  # JSON with python3's json module rather than with the encoder under test.
  use ExUnit.Case, async: true

  alias H2Flow.Demo

  defp start_demo(opts \\ []) do
    # The servers are linked to the test process and go down with it.
    {:ok, demo} = Demo.start([port: 0, tls_port: 0, ip: {127, 0, 0, 1}] ++ opts)
    demo
  end

  defp url(demo, transport, path) do
    scheme = if transport == :tls, do: "https", else: "http"
    "#{scheme}://127.0.0.1:#{Demo.port(demo, transport)}#{path}"
  end

  # Returns {status, http_version, content_type, body}.
  defp curl(demo, transport, path, args \\ []) do
    h2 = if transport == :tls, do: ["-k", "--http2"], else: ["--http2-prior-knowledge"]
    write_out = ["-w", "\n--meta-- %{http_code} %{http_version} %{content_type}"]
    args = ["-sS"] ++ h2 ++ write_out ++ args ++ [url(demo, transport, path)]
    {out, 0} = System.cmd("curl", args)
    [body, meta] = String.split(out, "\n--meta-- ")

    case String.split(meta, " ", parts: 3) do
      [status, version, type] -> {String.to_integer(status), version, type, body}
      [status, version] -> {String.to_integer(status), version, "", body}
    end
  end

  # Evaluates a Python expression over the decoded JSON `d`, and prints it.
  defp python(json, expr) do
    script = "import json, sys\nd = json.loads(sys.argv[1])\nprint(eval(sys.argv[2]), end='')"
    {out, status} = System.cmd("python3", ["-c", script, json, expr], stderr_to_stdout: true)
    assert status == 0, "python3 could not evaluate #{expr} over #{json}:\n#{out}"
    out
  end

  defp nghttp(demo, transport, path, count) do
    System.cmd("nghttp", ["-n", "-m", "#{count}", url(demo, transport, path)],
      stderr_to_stdout: true
    )
  end

  # Waits for a condition that another process brings about (bounded, no fixed sleeps).
  defp eventually(fun, deadline \\ System.monotonic_time(:millisecond) + 10_000) do
    cond do
      fun.() ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        flunk("condition not met within 10 s")

      true ->
        Process.sleep(10)
        eventually(fun, deadline)
    end
  end

  test "GET / serves the page, with its chart and no external assets, over h2c and TLS" do
    demo = start_demo()

    for transport <- [:tcp, :tls] do
      {200, "2", "text/html; charset=utf-8", page} =
        curl(demo, transport, "/", ["-H", "accept: text/html,*/*"])

      assert page =~ ~s(<svg id="chart")
      assert page =~ "fetch(`/slow?ms=${ms}"
      refute page =~ ~r/(src|href)="?(https?:)?\/\//
    end
  end

  # What a new user types first: curl without flags (HTTP/1.1 on the cleartext port; over TLS,
  # ALPN picks h2), as `mix h2flow.demo`'s banner says.
  test "curl without flags gets an answer on both ports, over either version" do
    demo = start_demo()
    tls_port = Demo.port(demo, :tls)
    base = ["-sS", "-w", " %{http_version}", "--resolve", "localhost:#{tls_port}:127.0.0.1"]

    for {args, want} <- [
          {["http://127.0.0.1:#{Demo.port(demo, :tcp)}/"], "HTTP/1.1 (http)"},
          {["-k", "https://localhost:#{tls_port}/"], "HTTP/2 (https)"},
          {["-k", "--http1.1", "https://localhost:#{tls_port}/"], "HTTP/1.1 (https)"}
        ] do
      {out, 0} = System.cmd("curl", base ++ args)
      assert out =~ ~r/\Ah2flow demo: hello over #{Regex.escape(want)}\.\n/
      version = if want =~ "HTTP/2", do: "2", else: "1.1"
      assert String.ends_with?(out, " " <> version)
    end

    # /stats over HTTP/1.1: its connection in the same terms as an HTTP/2 one.
    {out, 0} = System.cmd("curl", ["-sS", "http://127.0.0.1:#{Demo.port(demo, :tcp)}/stats"])

    assert python(out, "[(c['protocol'], c['streams_opened']) for c in d['per_connection']]") ==
             "[('http/1.1', 1)]"

    # The first curl's request and this one, once its connection has reported it (at its next
    # flush, which the /stats handler may read before).
    assert python(out, "d['requests']['HTTP/1.1']") in ["1", "2"]
    eventually(fn -> H2Flow.stats(demo.tcp).requests[:"HTTP/1.1"] == 2 end)
  end

  test "/slow counts the requests in flight; their peak reaches the advertised limit" do
    demo = start_demo(max_concurrent_streams: 100)

    # nghttp opens at most the server's limit at a time and queues the rest, as browsers do.
    assert {_, 0} = nghttp(demo, :tcp, "/slow?ms=300", 150)

    assert %{in_flight: 0, peak_in_flight: 100, slow_started: 150, slow_completed: 150} =
             Demo.counters(demo)

    # nghttp sent them all on one connection; curl makes a second.
    assert Demo.slow_per_connection(demo) == [150]
    {200, "2", _, body} = curl(demo, :tcp, "/slow?ms=0")
    assert body == "slept 0 ms\n"
    assert Demo.slow_per_connection(demo) == [150, 1]
  end

  test "a /slow request stopped by its client leaves in_flight" do
    demo = start_demo()
    nghttp = System.find_executable("nghttp")
    args = ["-n", "-m", "3", url(demo, :tls, "/slow?ms=60000")]

    port =
      Port.open({:spawn_executable, nghttp}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    eventually(fn -> Demo.counters(demo).in_flight == 3 end)
    {_, 0} = System.cmd("kill", ["-9", "#{os_pid}"])
    assert_receive {^port, {:exit_status, _}}, 10_000
    # The connection closes and kills the three handlers mid-sleep.
    eventually(fn -> Demo.counters(demo).in_flight == 0 end)
    assert %{peak_in_flight: 3, slow_started: 3, slow_completed: 0} = Demo.counters(demo)
  end

  @tag :tmp_dir
  test "/echo answers the body size; buffered bytes stay within the connection window", %{
    tmp_dir: dir
  } do
    demo =
      start_demo(
        initial_connection_window: 65_535,
        initial_stream_window: 32_768,
        adaptive_window: false
      )

    file = Path.join(dir, "body")
    File.write!(file, :binary.copy(<<7>>, 3_000_000))

    for transport <- [:tcp, :tls] do
      {200, "2", "text/plain", body} =
        curl(demo, transport, "/echo", ["--data-binary", "@" <> file])

      assert body == "3000000"
      {200, "2", "application/json", stats} = curl(demo, transport, "/stats")
      assert python(stats, "d['data_bytes_received']") == "3000000"
      peak = String.to_integer(python(stats, "d['peak_buffered_bytes']"))
      assert peak > 0 and peak <= 65_535
    end

    counters = Demo.counters(demo)
    assert %{echo_completed: 2, echo_last_bytes: 3_000_000} = counters
    # /echo reads 64 KiB at a time: a read gets what arrived before it (at most a stream
    # window) or its length and at most one more frame.
    assert counters.echo_largest_read in 1..(64 * 1024 + 16_384)

    {200, "2", _, "0"} = curl(demo, :tcp, "/echo", ["-X", "POST"])
  end

  test "/stats is JSON with the server's stats, the demo's counters and the settings" do
    demo = start_demo(max_concurrent_streams: 42)

    for transport <- [:tcp, :tls] do
      {200, "2", "application/json", json} = curl(demo, transport, "/stats")

      keys =
        ~w(in_flight peak_in_flight slow_completed echo_last_bytes max_concurrent_streams) ++
          ~w(initial_connection_window max_connection_window adaptive_window connections) ++
          ~w(window_update_frames window_updates_sent peak_buffered_bytes connection_window) ++
          ~w(slow_per_connection per_connection)

      assert python(json, "sorted(set(#{inspect(keys)}) - set(d))") == "[]"
      assert python(json, "d['transport']") == Atom.to_string(transport)
      assert python(json, "d['max_concurrent_streams']") == "42"
      assert python(json, "d['adaptive_window']") == "True"

      assert python(
               json,
               "d['window_updates_sent'] == sum(d['window_update_frames'].values())"
             ) == "True"

      # The connection's first WINDOW_UPDATE, reported at a flush the handler may read before.
      eventually(fn ->
        H2Flow.stats(Map.fetch!(demo, transport)).window_update_frames.connection >= 1
      end)

      # curl's own connection, live while it asks, with its own window.
      assert python(
               json,
               "[(c['streams_opened'], c['connection_window'] > 0) for c in d['per_connection']]"
             ) == "[(1, True)]"
    end
  end

  test "/report stores the page's results; GET /report and last_report/2 return them" do
    demo = start_demo()
    assert Demo.last_report(demo) == nil
    {404, "2", "application/json", _} = curl(demo, :tcp, "/report")

    note = "quote \" backslash \\ newline \n tab \t control \x01 unicode é ✓"

    form =
      ["kind=slow", "completed=300", "failed=0", "ratio=0.5", "ok=true", "protocol=h2"]
      |> Enum.flat_map(&["--data", &1])

    {204, "2", _, ""} = curl(demo, :tls, "/report", form ++ ["--data-urlencode", "note=" <> note])

    assert %{
             "kind" => "slow",
             "completed" => 300,
             "failed" => 0,
             "ratio" => 0.5,
             "ok" => true,
             "protocol" => "h2",
             "note" => ^note,
             "transport" => "tls",
             "server_peak_in_flight" => 0
           } = Demo.last_report(demo)

    assert Demo.last_report(demo, "slow") == Demo.last_report(demo)
    assert Demo.last_report(demo, "upload") == nil

    {200, "2", "application/json", json} = curl(demo, :tcp, "/report?kind=slow")
    assert python(json, "d['note']") == note
    assert python(json, "(d['completed'], d['ratio'], d['ok'])") == "(300, 0.5, True)"
    {404, "2", _, _} = curl(demo, :tcp, "/report?kind=upload")

    too_large = "note=" <> String.duplicate("x", 20_000)
    {413, "2", _, _} = curl(demo, :tcp, "/report", ["--data", too_large])
    {400, "2", _, _} = curl(demo, :tcp, "/report", ["--data", "bad=%FF"])
    assert Demo.last_report(demo)["note"] == note
  end

  test "/reset zeroes the counters between experiments and keeps the reports" do
    demo = start_demo()
    assert {_, 0} = nghttp(demo, :tcp, "/slow?ms=0", 5)
    {204, "2", _, ""} = curl(demo, :tcp, "/report", ["--data", "kind=slow"])
    assert %{slow_completed: 5, reports: 1} = Demo.counters(demo)
    assert Demo.slow_per_connection(demo) == [5]

    {204, "2", _, ""} = curl(demo, :tcp, "/reset", ["-X", "POST"])

    assert %{in_flight: 0, peak_in_flight: 0, slow_started: 0, slow_completed: 0, reports: 1} =
             Demo.counters(demo)

    assert Demo.slow_per_connection(demo) == []

    assert %{"kind" => "slow"} = Demo.last_report(demo)
  end

  test "unknown paths get 404, wrong methods 405 with allow" do
    demo = start_demo(tls: false)
    {404, "2", _, _} = curl(demo, :tcp, "/nope")
    {405, "2", _, _} = curl(demo, :tcp, "/echo")
    {405, "2", _, _} = curl(demo, :tcp, "/stats", ["-X", "POST"])

    args = ["-sS", "-D", "-", "-o", "/dev/null", "-X", "PUT", "--http2-prior-knowledge"]
    {out, 0} = System.cmd("curl", args ++ [url(demo, :tcp, "/reset")])

    assert out =~ ~r/^allow: POST\r$/m
    assert_raise ArgumentError, fn -> Demo.port(demo, :tls) end
  end

  test "start/1 rejects unknown options and invalid engine options" do
    assert_raise ArgumentError, ~r/unknown option :bogus/, fn -> Demo.start(bogus: 1) end

    assert_raise ArgumentError, ~r/max_concurrent_streams/, fn ->
      Demo.start(max_concurrent_streams: -1)
    end

    assert_raise ArgumentError, ~r/:tls must be/, fn -> Demo.start(tls: :yes) end
    assert_raise ArgumentError, ~r/:tls must be/, fn -> Demo.start(tls: []) end
  end

  test "start/1 serves TLS with the certificate given as :tls; a client trusting its CA " <>
         "verifies it" do
    tls = H2Flow.TLS.self_signed(["localhost"])
    {:ok, demo} = Demo.start(port: 0, tls_port: 0, ip: {127, 0, 0, 1}, tls: tls)
    on_exit(fn -> Demo.stop(demo) end)
    ca = Path.join(System.tmp_dir!(), "h2flow-demo-ca-#{System.unique_integer([:positive])}.pem")
    File.write!(ca, H2Flow.TLS.ca_pem(tls))
    on_exit(fn -> File.rm(ca) end)
    port = Demo.port(demo, :tls)
    args = ["-sS", "--http2", "--cacert", ca, "--resolve", "localhost:#{port}:127.0.0.1"]
    args = args ++ ["-o", "/dev/null", "-w", "%{http_code}", "https://localhost:#{port}/"]
    assert {"200", 0} = System.cmd("curl", args, stderr_to_stdout: true)
  end

  test "mix h2flow.demo parses its flags into start/1 options" do
    alias Mix.Tasks.H2flow.Demo, as: Task

    args =
      ~w(--port 9080 --tls-port 9443 --no-tls --host 127.0.0.1 --max-concurrent-streams 5) ++
        ~w(--initial-connection-window 100000 --initial-stream-window 50000 --no-adaptive-window)

    assert Enum.sort(Task.parse_args!(args)) ==
             Enum.sort(
               ip: {127, 0, 0, 1},
               port: 9080,
               tls_port: 9443,
               tls: false,
               max_concurrent_streams: 5,
               initial_connection_window: 100_000,
               initial_stream_window: 50_000,
               adaptive_window: false
             )

    assert Task.parse_args!([]) == [ip: {0, 0, 0, 0}]
    assert_raise Mix.Error, ~r/unknown option --bogus/, fn -> Task.parse_args!(["--bogus"]) end
    assert_raise Mix.Error, ~r/invalid value for --port/, fn -> Task.parse_args!(~w(--port x)) end

    assert_raise Mix.Error, ~r/--host must be an IP/, fn ->
      Task.parse_args!(~w(--host nowhere))
    end

    assert_raise Mix.Error, ~r/unexpected argument extra/, fn -> Task.parse_args!(["extra"]) end
  end
end
