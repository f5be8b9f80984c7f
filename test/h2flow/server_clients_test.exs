defmodule H2Flow.ServerClientsTest do
  # The server against clients written by others: curl, nghttp, h2load and python-hyper's h2
  # (test/support/h2_scenarios.py), over h2c and TLS; and what non-HTTP/2 clients are told.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req

  @moduletag timeout: 120_000

  setup do
    test = self()
    {server, port} = start_server!(&route(test, &1))
    %{server: server, port: port, me: test}
  end

  defp route(test, req) do
    case Req.path(req) do
      "/echo" ->
        {body, req} = read_all(req, [])
        Req.reply(200, %{"x-method" => Req.method(req)}, "#{byte_size(body)}", req)

      "/slow-read" ->
        # The scenario of the issue: a handler that is busy for a while before it reads.
        Process.sleep(500)
        {body, req} = read_all(req, [])
        Req.reply(200, %{}, "#{byte_size(body)}", req)

      "/hold" ->
        wait_for_go(test, req)
        Req.reply(200, %{}, "held #{Req.stream_id(req)}", req)

      "/scheme" ->
        Req.reply(200, %{}, "#{Req.scheme(req)} #{Req.authority(req)}", req)

      "/trailers" ->
        req = Req.stream_reply(200, %{"trailer" => "x-checksum"}, req)
        :ok = Req.stream_body("some data", :nofin, req)
        :ok = Req.stream_trailers(%{"x-checksum" => "sum"}, req)
        req

      path ->
        Req.reply(200, %{"content-type" => "text/plain"}, "hello #{path}?#{Req.qs(req)}", req)
    end
  end

  defp read_all(req, acc) do
    case Req.read_body(req) do
      {:more, data, req} -> read_all(req, [acc | data])
      {:ok, data, req} -> {IO.iodata_to_binary([acc | data]), req}
    end
  end

  # Returns {status, http_version, body}.
  defp curl(url, args) do
    write_out = ["-w", "\n--meta-- %{http_code} %{http_version}"]
    {out, 0} = System.cmd("curl", ["-sS"] ++ write_out ++ args ++ [url], stderr_to_stdout: true)
    [body, meta] = String.split(out, "\n--meta-- ")
    [status, version] = String.split(meta, " ")
    {String.to_integer(status), version, body}
  end

  describe "curl" do
    @tag :tmp_dir
    test "h2c with prior knowledge: GET and a POST of 1 MiB", %{port: port, tmp_dir: dir} do
      url = "http://127.0.0.1:#{port}"
      p = ["--http2-prior-knowledge"]
      assert {200, "2", "hello /a/b?x=1"} = curl(url <> "/a/b?x=1", p)

      file = Path.join(dir, "body")
      File.write!(file, :binary.copy("0123456789abcdef", 65_536))
      assert {200, "2", "1048576"} = curl(url <> "/echo", p ++ ["--data-binary", "@" <> file])
    end

    test "h2 over TLS with H2Flow.TLS.self_signed/0 (curl -k --http2)" do
      {_server, port} =
        start_server!(&route(self(), &1),
          transport: :tls,
          tls: H2Flow.TLS.self_signed(),
          http_versions: [:http2]
        )

      assert {200, "2", "hello /tls?"} = curl("https://localhost:#{port}/tls", ["-k", "--http2"])
      scheme = "https localhost:#{port}"
      assert {200, "2", ^scheme} = curl("https://localhost:#{port}/scheme", ["-k", "--http2"])
    end

    @tag :tmp_dir
    test "the certificate of H2Flow.TLS.self_signed/1 verifies against its CA, for its names",
         %{tmp_dir: dir} do
      tls = H2Flow.TLS.self_signed(["h2flow.test"])
      {_server, port} = start_server!(&route(self(), &1), transport: :tls, tls: tls)
      ca = Path.join(dir, "ca.pem")
      pem = for der <- tls[:cacerts], do: {:Certificate, der, :not_encrypted}
      File.write!(ca, :public_key.pem_encode(pem))
      resolve = ["--resolve", "h2flow.test:#{port}:127.0.0.1", "--cacert", ca, "--http2"]

      assert {200, "2", "hello /verified?"} =
               curl("https://h2flow.test:#{port}/verified", resolve)
    end

    test "trailers reach the client", %{port: port} do
      {out, 0} =
        System.cmd("curl", [
          "-sS",
          "-i",
          "--http2-prior-knowledge",
          "http://127.0.0.1:#{port}/trailers"
        ])

      assert out =~ "some data"
      assert out =~ ~r/x-checksum: sum\r?\n?$/
    end
  end

  describe "nghttp" do
    @tag :tmp_dir
    test "concurrent requests and an upload over h2c; GET over TLS", %{port: port, tmp_dir: dir} do
      file = Path.join(dir, "upload")
      File.write!(file, :binary.copy("n", 300_000))

      {out, 0} = System.cmd("nghttp", ["-nv", "-m", "20", "http://127.0.0.1:#{port}/many"])
      assert length(Regex.scan(~r/recv HEADERS frame <[^>]*stream_id=\d+>/, out)) == 20
      assert out =~ "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100"
      refute out =~ "RST_STREAM"

      {out, 0} = System.cmd("nghttp", ["-d", file, "http://127.0.0.1:#{port}/echo"])
      assert out == "300000"

      {_server, tls_port} =
        start_server!(&route(self(), &1), transport: :tls, tls: H2Flow.TLS.self_signed())

      # nghttp warns that it cannot verify the certificate, and carries on.
      {out, 0} =
        System.cmd("nghttp", ["https://localhost:#{tls_port}/over-tls"], stderr_to_stdout: true)

      assert String.ends_with?(out, "hello /over-tls?")
    end
  end

  describe "h2load" do
    test "2,000 GETs, 100 at a time per connection: 0 failures", %{port: port, server: server} do
      out = h2load(["-n", "2000", "-c", "4", "-m", "100", "http://127.0.0.1:#{port}/load"])
      assert out =~ "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed"
      assert out =~ "status codes: 2000 2xx"

      assert %{handlers_started: 2000, handler_crashes: 0, streams_refused: 0} =
               H2Flow.stats(server)
    end

    @tag :tmp_dir
    test "1,000 POSTs of 16 KiB: 0 failures", %{port: port, tmp_dir: dir} do
      file = Path.join(dir, "post")
      File.write!(file, :binary.copy("h", 16_384))

      out =
        h2load(["-n", "1000", "-c", "2", "-m", "50", "-d", file, "http://127.0.0.1:#{port}/echo"])

      assert out =~ "requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed"
    end
  end

  defp h2load(args) do
    {out, 0} = System.cmd("h2load", args, stderr_to_stdout: true)
    [summary] = Regex.run(~r/finished in .*\n/, out)

    shown =
      Enum.map_join(args, " ", &if(String.starts_with?(&1, "/"), do: Path.basename(&1), else: &1))

    IO.puts("\nh2load #{shown}: #{String.trim(summary)}")
    out
  end

  describe "python-hyper h2" do
    test "64 × 16 KiB POSTs to a handler that sleeps 500 ms, then reads: all answered, " <>
           "≤ 2 WINDOW_UPDATEs in ≤ 2 socket reads",
         %{port: port, server: server} do
      result = python!("posts", port, [64, 16_384, "/slow-read"])
      responses = Map.values(result.responses)
      assert length(responses) == 64
      assert Enum.all?(responses, &match?(%{status: 200, body: 5, ended: true}, &1))
      updates = result.window_updates.connection + result.window_updates.stream

      IO.puts(
        "\npython h2, 64 × 16 KiB: #{updates} WINDOW_UPDATE frames " <>
          "#{inspect(result.window_updates)} in #{result.reads_with_window_update} socket reads"
      )

      assert updates <= 2
      assert result.reads_with_window_update <= 2
      assert %{data_bytes_received: 1_048_576, handler_crashes: 0} = H2Flow.stats(server)
    end

    test "300 streams against max_concurrent_streams 100: 100 answered, 200 refused, the " <>
           "connection still serves",
         %{me: test} do
      {server, port} = start_server!(&route(test, &1), max_concurrent_streams: 100)
      task = python_task("refuse", port, [300, "/hold", "/after"])
      handlers = waiting(100, 20_000)
      assert Enum.map(handlers, fn {_, req} -> req.stream_id end) == Enum.to_list(1..199//2)
      eventually(fn -> stat(server, :streams_refused) == 200 end)
      for {pid, _} <- handlers, do: send(pid, :go)

      result = Task.await(task, 30_000)

      for id <- 1..599//2 do
        if id <= 199,
          do: assert(%{status: 200, ended: true, reset: nil} = result.responses[id]),
          else: assert(%{status: nil, reset: "refused_stream"} = result.responses[id])
      end

      assert %{status: 200, ended: true} = result.responses[result.after]
      assert result.terminated == nil
    end

    test "trailers", %{port: port} do
      result = python!("get", port, ["/trailers"])

      assert %{status: 200, body: 9, trailers: [["x-checksum", "sum"]], ended: true} =
               result.responses[result.stream]
    end
  end

  describe "HTTP/1.x clients of a server with http_versions: [:http2]" do
    @refusal "HTTP/1.1 505 HTTP Version Not Supported\r\nconnection: close\r\n" <>
               "content-type: text/plain\r\ncontent-length: 81\r\n\r\n" <>
               "This server speaks HTTP/2 only: h2 over TLS (ALPN), or h2c with prior knowledge.\n"

    test "an HTTP/1.1 request on the h2c port gets a 505 in plain text, then the socket closes" do
      {server, port} = start_server!(&route(self(), &1), http_versions: [:http2])
      {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
      :ok = :gen_tcp.send(socket, "GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
      assert read_all_socket(:gen_tcp, socket, "") == @refusal

      assert {505, "1.1", "This server speaks HTTP/2 only" <> _} =
               curl("http://127.0.0.1:#{port}/", ["--http1.1"])

      eventually(fn -> stat(server, :connections_closed) == 2 end)
      assert %{handlers_started: 0, streams_opened: 0} = H2Flow.stats(server)
    end

    test "TLS: a client that offers no ALPN gets the 505 text; one that offers only " <>
           "http/1.1 is refused in the handshake" do
      {_server, port} =
        start_server!(&route(self(), &1),
          transport: :tls,
          tls: H2Flow.TLS.self_signed(),
          http_versions: [:http2]
        )

      opts = [:binary, active: false, verify: :verify_none]
      {:ok, socket} = :ssl.connect(~c"127.0.0.1", port, opts, 5_000)
      assert :ssl.negotiated_protocol(socket) == {:error, :protocol_not_negotiated}
      assert read_all_socket(:ssl, socket, "") == @refusal

      assert {505, "1.1", _} =
               curl("https://localhost:#{port}/", ["-k", "--http1.1", "--no-alpn"])

      # RFC 7301 3.2: no protocol in common is a no_application_protocol alert (which :ssl
      # logs at notice level, on both sides).
      capture_log(fn ->
        assert {:error, {:tls_alert, {:no_application_protocol, _}}} =
                 :ssl.connect(
                   ~c"127.0.0.1",
                   port,
                   opts ++ [alpn_advertised_protocols: ["http/1.1"]],
                   5_000
                 )
      end)
    end
  end

  defp read_all_socket(transport, socket, acc) do
    case transport.recv(socket, 0, 5_000) do
      {:ok, data} -> read_all_socket(transport, socket, acc <> data)
      {:error, :closed} -> acc
    end
  end
end
