defmodule H2Flow.HTTP1ServerTest do
  # HTTP/1.1 on the same listener as HTTP/2, over real sockets with a raw client
  # (H2Flow.Test.H1Client, the VM's own HTTP parser): protocol selection (the first bytes on
  # cleartext, ALPN over TLS, :http_versions, the h2c upgrade), the handler API
  # (Req.version/1), keep-alive, pipelining, HEAD, 100-continue, Connection: close, the
  # handler lifecycle, back-pressure both ways, drain on shutdown, stats by version.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.{H1Client, H2Client}

  @kib 1024
  @mib 1024 * 1024

  defp route(test, req) do
    case Req.path(req) do
      "/info" ->
        info =
          Enum.join(
            [
              Req.version(req),
              Req.method(req),
              Req.scheme(req),
              Req.authority(req),
              Req.path(req),
              Req.qs(req),
              Req.header("x-test", req, "-")
            ],
            " "
          )

        Req.reply(200, %{"content-type" => "text/plain"}, info, req)

      "/echo" ->
        {size, sha, req} = hash_body(req, :crypto.hash_init(:sha256), 0)
        Req.reply(200, %{"x-size" => "#{size}"}, "#{size} #{sha}", req)

      "/stream" ->
        n = req |> Req.parse_qs() |> List.keyfind("n", 0, {"n", "3"}) |> elem(1)
        req = Req.stream_reply(200, %{"content-type" => "text/plain"}, req)
        for i <- 1..String.to_integer(n), do: :ok = Req.stream_body("part #{i}\n", :nofin, req)
        :ok = Req.stream_trailers(%{"x-parts" => n}, req)
        req

      "/none" ->
        req

      "/crash" ->
        raise "boom"

      "/crash-mid" ->
        req = Req.stream_reply(200, %{}, req)
        :ok = Req.stream_body("part", :nofin, req)
        raise "boom"

      "/wait" ->
        wait_for_go(test, req)
        Req.reply(200, %{}, "waited #{Req.stream_id(req)}", req)

      "/wait-then-echo" ->
        wait_for_go(test, req)
        {size, sha, req} = hash_body(req, :crypto.hash_init(:sha256), 0)
        Req.reply(200, %{}, "#{size} #{sha}", req)

      "/refuse" ->
        Req.reply(413, %{}, "too large", req)
    end
  end

  defp hash_body(req, ctx, size) do
    case Req.read_body(req, length: 1 * @mib) do
      {:more, data, req} -> hash_body(req, :crypto.hash_update(ctx, data), size + byte_size(data))
      {:ok, data, req} -> {size + byte_size(data), hex(:crypto.hash_update(ctx, data)), req}
    end
  end

  defp hex(ctx), do: ctx |> :crypto.hash_final() |> Base.encode16(case: :lower)
  defp sha(data), do: :crypto.hash(:sha256, data) |> Base.encode16(case: :lower)

  defp start!(opts \\ []) do
    test = self()
    start_server!(&route(test, &1), opts)
  end

  defp get(c, path, headers \\ []) do
    c = H1Client.send!(c, H1Client.request("GET", path, headers))
    H1Client.recv_response!(c)
  end

  describe "protocol selection on one port" do
    test "a request line gets HTTP/1.1, the preface HTTP/2, on the same port" do
      {server, port} = start!()
      c = H1Client.connect!(port)
      {r, c} = get(c, "/info?x=1", [{"x-test", "yes"}])
      assert %{status: 200, version: {1, 1}, body: "HTTP/1.1 GET http a /info x=1 yes"} = r
      assert H1Client.header(r, "content-length") == "33"
      assert H1Client.header(r, "date") =~ ~r/GMT$/
      # Keep-alive: a second request on the same connection.
      {r, _c} = get(c, "/info")
      assert r.body =~ "HTTP/1.1 GET"

      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/info")

      assert {:ok, _, %{status: 200, body: "HTTP/2 GET http " <> _}} =
               H2Client.read_response(conn, id)

      stats = H2Flow.stats(server)
      assert stats.connections == 2
      assert stats.http1.connections == 1
      assert stats.http2_connections == 1
      assert %{"HTTP/1.1": 2, "HTTP/2": 1, "HTTP/1.0": 0} = stats.requests
    end

    test "http_versions: [:http1] serves HTTP/1.1 only: the HTTP/2 preface gets 505" do
      {_server, port} = start!(http_versions: [:http1])
      {r, _} = get(H1Client.connect!(port), "/info")
      assert r.body =~ "HTTP/1.1"
      c = H1Client.connect!(port) |> H1Client.send!("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
      assert {%{status: 505}, c} = H1Client.recv_response!(c)
      assert H1Client.closed?(c)
    end

    test "an Upgrade: h2c request gets 101, then its response as HTTP/2 stream 1" do
      {server, port} = start!()
      {:ok, conn} = H2Client.connect("127.0.0.1", port)
      settings = Base.url_encode64(<<4::16, 1_000_000::32>>, padding: false)

      :ok =
        H2Client.send_raw(
          conn,
          "GET /info?u=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n" <>
            "Upgrade: h2c\r\nHTTP2-Settings: #{settings}\r\n\r\n"
        )

      {head, rest} = read_head(conn.socket, "")
      assert head =~ ~r/\AHTTP\/1.1 101 Switching Protocols\r\n/
      assert head =~ "upgrade: h2c"
      # Nothing follows the 101 before the client's preface (curl 7.88 cannot hold more than
      # 32 KiB after it), though the handler has answered meanwhile.
      assert rest == ""
      assert {:error, :timeout} = :gen_tcp.recv(conn.socket, 0, 300)
      :ok = H2Client.send_preface(conn)

      assert {:ok, conn, %{status: 200, body: "HTTP/2 GET http a /info u=1 -"}} =
               H2Client.read_response(conn, 1)

      # The connection goes on in HTTP/2.
      {:ok, conn, id} = H2Client.request(%{conn | next_stream_id: 3}, "GET", "/info")
      assert {:ok, _, %{status: 200}} = H2Client.read_response(conn, id)
      stats = H2Flow.stats(server)
      assert stats.http1.upgrades == 1
      assert %{"HTTP/1.1": 0, "HTTP/2": 2} = stats.requests
      assert stats.http1.connections == 0 and stats.http2_connections == 1
    end

    test "h2c_upgrade: false (or a server without HTTP/2) serves Upgrade: h2c over HTTP/1.1" do
      settings = Base.url_encode64(<<4::16, 1_000_000::32>>, padding: false)

      upgrade = [
        {"connection", "Upgrade, HTTP2-Settings"},
        {"upgrade", "h2c"},
        {"http2-settings", settings}
      ]

      for opts <- [[h2c_upgrade: false], [http_versions: [:http1]]] do
        {server, port} = start!(opts)
        {r, _} = get(H1Client.connect!(port), "/info", upgrade)
        assert %{status: 200, body: "HTTP/1.1 GET" <> _} = r
        eventually(fn -> H2Flow.stats(server).http1.upgrades_declined == 1 end)
      end
    end

    test "TLS: ALPN h2 or http/1.1 (h2 preferred); no ALPN is HTTP/1.1" do
      {_server, port} = start!(transport: :tls, tls: H2Flow.TLS.self_signed())
      base = [verify: :verify_none]

      for {offered, negotiated, version} <- [
            {["http/1.1"], {:ok, "http/1.1"}, "HTTP/1.1"},
            {nil, {:error, :protocol_not_negotiated}, "HTTP/1.1"},
            {["http/1.1", "h2"], {:ok, "h2"}, nil}
          ] do
        alpn = if offered, do: [alpn_advertised_protocols: offered], else: []
        c = H1Client.connect!(port, tls: base ++ alpn)
        assert :ssl.negotiated_protocol(c.socket) == negotiated

        if version do
          {r, _} = get(c, "/info")
          assert r.body == "#{version} GET https a /info  -"
        end

        H1Client.close(c)
      end
    end
  end

  defp read_head(socket, acc) do
    case :binary.split(acc, "\r\n\r\n") do
      [head, rest] ->
        {head <> "\r\n\r\n", rest}

      [_] ->
        {:ok, data} = :gen_tcp.recv(socket, 0, 5_000)
        read_head(socket, acc <> data)
    end
  end

  describe "requests and responses" do
    test "bodies by content-length and chunked (with trailers); streamed responses are chunked" do
      {_server, port} = start!()
      c = H1Client.connect!(port)
      body = :crypto.strong_rand_bytes(300 * @kib)

      c =
        H1Client.send!(
          c,
          H1Client.request("POST", "/echo", [{"content-length", "#{byte_size(body)}"}], body)
        )

      {r, c} = H1Client.recv_response!(c)
      assert r.body == "#{byte_size(body)} #{sha(body)}"

      chunked = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 1\r\n\r\n"

      c =
        H1Client.send!(
          c,
          H1Client.request("POST", "/echo", [{"transfer-encoding", "chunked"}], chunked)
        )

      {r, c} = H1Client.recv_response!(c)
      assert r.body == "11 #{sha("hello world")}"

      {r, _c} = get(c, "/stream?n=3")
      assert H1Client.header(r, "transfer-encoding") == "chunked"
      assert r.body == "part 1\npart 2\npart 3\n"
      assert r.trailers == [{"x-parts", "3"}]
    end

    test "HEAD: the headers of GET, no body; the connection goes on" do
      {_server, port} = start!()
      c = H1Client.send!(H1Client.connect!(port), H1Client.request("HEAD", "/info"))
      {r, c} = H1Client.recv_response!(c, head: true)
      assert r.status == 200 and r.body == ""
      # The length of what GET would get ("... GET ..."), not of this answer's body.
      assert H1Client.header(r, "content-length") == "29"
      {r, _} = get(c, "/info")
      assert r.body == "HTTP/1.1 GET http a /info  -"
    end

    test "pipelined requests are answered in order, at most :max_pipelined parsed at a time" do
      {server, port} = start!(max_pipelined: 3)
      c = H1Client.connect!(port)
      requests = for i <- 1..10, do: H1Client.request("GET", "/wait", [{"x-i", "#{i}"}])
      c = H1Client.send!(c, requests)
      # Three are parsed and their handlers run; the rest wait in the socket.
      [{pid3, _}, {pid2, _}, {pid1, _}] = waiting(3) |> Enum.reverse()
      refute_receive {:waiting, _, _}, 200
      eventually(fn -> stat(server, :handlers_started) == 3 end)
      # Answered out of order by the handlers, written in order by the connection.
      for pid <- [pid3, pid2, pid1], do: send(pid, :go)

      {bodies, _} =
        Enum.map_reduce(1..10, c, fn i, c ->
          if i <= 7, do: for({pid, _} <- waiting(1), do: send(pid, :go))
          {r, c} = H1Client.recv_response!(c)
          {r.body, c}
        end)

      assert bodies == for(i <- 1..10, do: "waited #{i}")
      assert H2Flow.stats(server).http1.peak_pipelined == 3
    end

    test "Expect: 100-continue: 100 when the handler reads; none when it answers first" do
      {_server, port} = start!()
      c = H1Client.connect!(port)

      head =
        H1Client.request("POST", "/echo", [{"content-length", "5"}, {"expect", "100-continue"}])

      c = H1Client.send!(c, head)
      {r, c} = H1Client.recv_response!(c)
      assert r.status == 100
      {r, c} = c |> H1Client.send!("hello") |> H1Client.recv_response!()
      assert r.body == "5 #{sha("hello")}"

      # Refused without reading: no 100, and the body the client holds back never comes, so
      # the connection cannot go on (RFC 9110 10.1.1).
      head =
        H1Client.request("POST", "/refuse", [{"content-length", "5"}, {"expect", "100-continue"}])

      {r, c} = c |> H1Client.send!(head) |> H1Client.recv_response!()
      assert r.status == 413
      assert H1Client.header(r, "connection") == "close"
      assert H1Client.closed?(c)
    end

    test "Connection: close, and HTTP/1.0's keep-alive rules" do
      {server, port} = start!()
      # HTTP/1.1 with close: answered with close, then the connection closes.
      c = H1Client.connect!(port)
      {r, c} = get(c, "/info", [{"connection", "close"}])
      assert H1Client.header(r, "connection") == "close"
      assert H1Client.closed?(c)

      # HTTP/1.0 without keep-alive: closes after the response.
      c =
        H1Client.connect!(port) |> H1Client.send!(H1Client.request("GET", "/info", [], "", "1.0"))

      {r, c} = H1Client.recv_response!(c)
      assert r.body == "HTTP/1.0 GET http a /info  -"
      assert H1Client.header(r, "connection") == "close"
      assert H1Client.closed?(c)

      # HTTP/1.0 with keep-alive: kept, and said so, while responses have a length...
      c = H1Client.connect!(port)
      ka = H1Client.request("GET", "/info", [{"connection", "keep-alive"}], "", "1.0")
      {r, c} = c |> H1Client.send!(ka) |> H1Client.recv_response!()
      assert H1Client.header(r, "connection") == "keep-alive"
      {r, c} = c |> H1Client.send!(ka) |> H1Client.recv_response!()
      assert r.status == 200
      # ... a streamed one has none: the close ends it.
      stream = H1Client.request("GET", "/stream?n=2", [{"connection", "keep-alive"}], "", "1.0")
      {r, c} = c |> H1Client.send!(stream) |> H1Client.recv_response!()
      assert H1Client.header(r, "transfer-encoding") == nil
      assert r.body == "part 1\npart 2\n"
      assert H1Client.closed?(c)
      assert %{"HTTP/1.0": 4, "HTTP/1.1": 1} = H2Flow.stats(server).requests
    end
  end

  describe "the handler lifecycle, as over HTTP/2" do
    @tag :capture_log
    test "no reply: 204; a crash before replying: 500; the connection carries on" do
      {server, port} = start!()
      c = H1Client.connect!(port)
      {r, c} = get(c, "/none")
      assert r.status == 204

      {r, c} = ExUnit.CaptureLog.with_log(fn -> get(c, "/crash") end) |> elem(0)

      assert r.status == 500 and H1Client.header(r, "content-length") == "0"
      {r, _} = get(c, "/info")
      assert r.status == 200
      assert stat(server, :handler_crashes) == 1
    end

    @tag :capture_log
    test "a crash mid-response cuts the response short: the connection closes" do
      {_server, port} = start!()
      c = H1Client.send!(H1Client.connect!(port), H1Client.request("GET", "/crash-mid"))
      out = H1Client.read_to_close(c)
      assert out =~ ~r/\AHTTP\/1.1 200 OK\r\n/
      assert String.ends_with?(out, "4\r\npart\r\n"), "no last chunk: the client sees it was cut"
    end

    test "Connection: close: the client gets the close at once; a handler still running after " <>
           "its answer finishes" do
      test = self()

      {server, port} =
        start_server!(fn req ->
          req = Req.reply(200, %{}, "answered", req)
          # Still running after the answer: the connection has nothing more to say.
          receive do
            :go -> send(test, :finished)
          end

          req
        end)

      c =
        H1Client.send!(
          H1Client.connect!(port),
          H1Client.request("GET", "/", [{"connection", "close"}])
        )

      {r, c} = H1Client.recv_response!(c)
      assert r.body == "answered"
      assert H1Client.closed?(c)

      [pid] =
        eventually(fn ->
          match?([_], handlers(connection!(server))) && handlers(connection!(server))
        end)

      send(pid, :go)
      assert_receive :finished, 5_000
      eventually(fn -> H2Flow.stats(server).connections == 0 end)
      assert %{handlers_stopped: 0, handler_crashes: 0} = H2Flow.stats(server)
    end
  end

  describe "back-pressure" do
    test "a handler that does not read: the socket is not read past :max_body_buffer" do
      {server, port} = start!(max_body_buffer: 64 * @kib, read_buffer: 16 * @kib)
      body = :crypto.strong_rand_bytes(16 * @mib)
      c = H1Client.connect!(port)

      head =
        H1Client.request("POST", "/wait-then-echo", [{"content-length", "#{byte_size(body)}"}])

      c = H1Client.send!(c, head)
      sender = Task.async(fn -> H1Client.send!(c, body) end)
      [{pid, _}] = waiting(1)
      # Held: at most the limit plus the reads in flight when reading stopped.
      eventually(fn -> H2Flow.stats(server).http1.input_pauses >= 1 end)
      Process.sleep(200)
      stats = H2Flow.stats(server).http1
      assert stats.peak_buffered_bytes <= 64 * @kib + 8 * 16 * @kib
      assert stats.body_bytes_received < byte_size(body) / 4
      send(pid, :go)
      Task.await(sender, 30_000)
      {r, _} = H1Client.recv_response!(c, timeout: 30_000)
      assert r.body == "#{byte_size(body)} #{sha(body)}"
    end

    test "a client that does not read: stream_body blocks its handler" do
      test = self()
      progress = :counters.new(1, [])

      {server, port} =
        start_server!(fn req ->
          req = Req.stream_reply(200, %{}, req)
          chunk = :binary.copy("z", 64 * @kib)

          for _ <- 1..1_000 do
            :ok = Req.stream_body(chunk, :nofin, req)
            :counters.add(progress, 1, 1)
          end

          :ok = Req.stream_body("", :fin, req)
          send(test, :streamed)
          req
        end)

      c = H1Client.send!(H1Client.connect!(port), H1Client.request("GET", "/big"))
      # The handler stops: its sends wait for the socket, which the client does not read.
      stalled =
        eventually(fn ->
          before = :counters.get(progress, 1)
          Process.sleep(300)
          before == :counters.get(progress, 1) and before
        end)

      assert stalled < 1_000
      assert H2Flow.stats(server).http1.peak_queued_bytes <= 2 * 64 * @kib + 16
      {r, _} = H1Client.recv_response!(c, timeout: 30_000)
      assert byte_size(r.body) == 1_000 * 64 * @kib
      assert_receive :streamed, 5_000
    end
  end

  test "shutdown drains: the request in flight is answered with connection: close" do
    {server, port} = start!()
    c = H1Client.send!(H1Client.connect!(port), H1Client.request("GET", "/wait"))
    [{pid, _}] = waiting(1)
    stopper = Task.async(fn -> H2Flow.stop(server) end)
    # New connections are refused once the drain started.
    eventually(fn -> match?({:error, _}, H1Client.connect(port)) end)
    send(pid, :go)
    {r, c} = H1Client.recv_response!(c)
    assert r.body == "waited 1"
    assert H1Client.header(r, "connection") == "close"
    assert H1Client.closed?(c)
    Task.await(stopper)
  end
end
