defmodule H2Flow.ServerReqTest do
  # H2Flow.Req and the H2Flow.Handler behaviour over real sockets: what a handler reads, what
  # each way of answering puts on the wire, crashes, and calls on streams that are gone.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  setup do
    test = self()
    # Each test's handler is the function it sends; one server for all of them.
    {server, port} = start_server!(fn req -> run_remote(test, req) end)
    %{server: server, port: port, conn: connect!(port)}
  end

  # The handler asks the test which function to run (so one server serves every test).
  defp run_remote(test, req) do
    send(test, {:handler, self(), req})

    receive do
      {:run, fun} -> fun.(req)
    end
  end

  # Answers the next handler with `fun`; returns its pid and request.
  defp serve(fun) do
    assert_receive {:handler, pid, req}, 5_000
    send(pid, {:run, fun})
    {pid, req}
  end

  defp get(conn, path, headers \\ []) do
    {:ok, conn, id} = H2Client.request(conn, "GET", path, headers)
    {conn, id}
  end

  describe "request accessors" do
    test "method, scheme, authority, path, qs, headers, header, peer, stream_id", %{
      conn: conn,
      port: port
    } do
      headers = [
        {"accept", "text/plain"},
        {"cookie", "a=1"},
        {"x-multi", "one"},
        {"cookie", "b=2"},
        {"x-multi", "two"}
      ]

      {:ok, conn, id} = H2Client.request(conn, "PUT", "/a/b%20c?x=1&y=%C3%A9&x=2", headers, "")
      test = self()
      {_pid, req} = serve(fn req -> send(test, {:req, req}) && Req.reply(200, req) end)
      assert {:ok, _, %{status: 200}} = H2Client.read_response(conn, id)

      assert Req.method(req) == "PUT"
      assert Req.scheme(req) == "http"
      assert Req.authority(req) == "127.0.0.1:#{port}"
      assert Req.path(req) == "/a/b%20c"
      assert Req.qs(req) == "x=1&y=%C3%A9&x=2"
      assert Req.parse_qs(req) == [{"x", "1"}, {"y", "é"}, {"x", "2"}]
      assert Req.stream_id(req) == id
      assert Req.header("accept", req) == "text/plain"
      assert Req.header("missing", req) == nil
      assert Req.header("missing", req, "default") == "default"
      # RFC 9113 8.2.3: cookie crumbs joined with "; ", other repeated fields with ", ".
      assert Req.header("cookie", req) == "a=1; b=2"
      assert Req.header("x-multi", req) == "one, two"
      refute Enum.any?(Map.keys(Req.headers(req)), &String.starts_with?(&1, ":"))
      assert Req.has_body(req) == false
      assert Req.body_length(req) == nil

      {:ok, {_, client_port}} = :inet.sockname(conn.socket)
      assert Req.peer(req) == {{127, 0, 0, 1}, client_port}
    end

    test "a request without a query string; content-length and has_body", %{conn: conn} do
      {:ok, conn, id} =
        H2Client.request(conn, "POST", "/upload", [{"content-length", "3"}], "abc")

      {_, req} = serve(&Req.reply(200, &1))
      assert {:ok, _, %{status: 200}} = H2Client.read_response(conn, id)
      assert Req.qs(req) == "" and Req.parse_qs(req) == []
      assert Req.has_body(req) and Req.body_length(req) == 3
    end
  end

  describe "read_body/2" do
    test "a whole body; then {:ok, \"\"}; a request without a body", %{conn: conn} do
      test = self()

      {:ok, conn, id} = H2Client.request(conn, "POST", "/", [], "hello")

      serve(fn req ->
        {:ok, body, req} = Req.read_body(req)
        send(test, {:read, body, Req.read_body(req)})
        Req.reply(200, req)
      end)

      assert_receive {:read, "hello", {:ok, "", _}}, 5_000
      {conn, 200} = status(conn, id)

      {conn, id} = get(conn, "/")
      serve(fn req -> send(test, {:read, Req.read_body(req)}) && Req.reply(200, req) end)
      assert_receive {:read, {:ok, "", _}}, 5_000
      {_conn, 200} = status(conn, id)
    end

    test ":length: {:more, ...} once that much is buffered, {:ok, ...} at the end", %{
      conn: conn,
      server: server
    } do
      test = self()
      {conn, id} = open(conn)

      {pid, _} =
        serve(fn req ->
          receive(do: (:go -> :ok))
          {:more, a, req} = Req.read_body(req, length: 1000)
          send(test, {:read, a})
          {:more, b, req} = Req.read_body(req, length: 1000, period: :infinity)
          send(test, {:read, b})
          {:more, c, req} = Req.read_body(req, length: 10_000, period: :infinity)
          send(test, {:read, c})
          {:ok, d, req} = Req.read_body(req, length: 10_000, period: :infinity)
          send(test, {:read, d})
          Req.reply(200, req)
        end)

      :ok = H2Client.send_data(conn, id, String.duplicate("a", 5000), false)
      eventually(fn -> stat(server, :buffered_bytes) == 5000 end)
      send(pid, :go)
      assert_receive {:read, a}, 5_000
      assert a == String.duplicate("a", 5000)

      # Fewer bytes than :length are held back until the length is reached.
      :ok = H2Client.send_data(conn, id, String.duplicate("b", 3000), false)
      assert_receive {:read, b}, 5_000
      assert b == String.duplicate("b", 3000)

      :ok = H2Client.send_data(conn, id, String.duplicate("c", 6000), false)
      refute_receive {:read, _}, 50
      :ok = H2Client.send_data(conn, id, String.duplicate("d", 6000), false)
      assert_receive {:read, c}, 5_000
      assert c == String.duplicate("c", 6000) <> String.duplicate("d", 6000)

      :ok = H2Client.send_data(conn, id, "end", true)
      assert_receive {:read, "end"}, 5_000
      {_conn, 200} = status(conn, id)
    end

    test ":period: what arrived in time, possibly nothing, as {:more, ...}", %{conn: conn} do
      test = self()
      {conn, id} = open(conn)

      serve(fn req ->
        send(test, {:read, Req.read_body(req, period: 30)})
        send(test, :reading)
        # Periods that end before "partial" arrives (a loaded machine) give nothing each.
        {data, req} = read_until_some(req)
        send(test, {:read, data})
        {:ok, rest, req} = Req.read_body(req, period: :infinity)
        send(test, {:read, rest})
        Req.reply(200, req)
      end)

      assert_receive {:read, {:more, "", %Req{}}}, 5_000
      assert_receive :reading, 5_000
      :ok = H2Client.send_data(conn, id, "partial", false)
      assert_receive {:read, "partial"}, 5_000
      :ok = H2Client.send_data(conn, id, "rest", true)
      assert_receive {:read, "rest"}, 5_000
      {_conn, 200} = status(conn, id)
    end

    test "the body ends with request trailers", %{conn: conn} do
      test = self()
      {conn, id} = open(conn)
      :ok = H2Client.send_data(conn, id, "body", false)
      :ok = H2Client.send_headers(conn, id, [{"x-checksum", "42"}], true)

      serve(fn req ->
        send(test, {:read, Req.read_body(req, period: :infinity)})
        Req.reply(200, req)
      end)

      assert_receive {:read, {:ok, "body", _}}, 5_000
      {_conn, 200} = status(conn, id)
    end

    test "bad options raise in the handler", %{conn: conn} do
      test = self()
      {:ok, conn, id} = H2Client.request(conn, "POST", "/", [], "x")

      serve(fn req ->
        for opts <- [[length: -1], [length: :all], [period: -5], [period: :never]] do
          send(test, {:raised, opts, catch_error(Req.read_body(req, opts))})
        end

        Req.reply(200, req)
      end)

      for _ <- 1..4, do: assert_receive({:raised, _, %ArgumentError{}}, 5_000)
      {_conn, 200} = status(conn, id)
    end
  end

  describe "answers" do
    test "reply/4: status, headers (map or list), iodata body, content-length and date", %{
      conn: conn
    } do
      {conn, id} = get(conn, "/")
      serve(&Req.reply(201, %{"content-type" => "text/plain"}, ["he", ?l, "lo"], &1))

      assert {:ok, conn, %{status: 201, headers: headers, body: "hello", trailers: []}} =
               H2Client.read_response(conn, id)

      assert {"content-type", "text/plain"} in headers
      assert {"content-length", "5"} in headers
      assert {"date", date} = List.keyfind(headers, "date", 0)
      assert date =~ ~r/^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/

      {conn, id} = get(conn, "/")
      serve(&Req.reply("404 Not Found", [{"x-a", "1"}, {:x_b, ["2", "3"]}], "", &1))
      assert {:ok, conn, %{status: 404, headers: headers}} = H2Client.read_response(conn, id)
      assert {"x-a", "1"} in headers and {"x_b", "23"} in headers

      # A content-length given by the handler is kept.
      {conn, id} = get(conn, "/")
      serve(&Req.reply(200, %{"content-length" => "2"}, "ok", &1))

      assert {:ok, _, %{status: 200, headers: headers, body: "ok"}} =
               H2Client.read_response(conn, id)

      assert Enum.count(headers, &match?({"content-length", _}, &1)) == 1
    end

    test "reply/2 sends HEADERS with END_STREAM and no DATA; a second reply raises", %{
      conn: conn
    } do
      test = self()
      {conn, id} = get(conn, "/")

      serve(fn req ->
        req = Req.reply(204, req)
        send(test, {:again, catch_error(Req.reply(200, req))})
        req
      end)

      assert_receive {:again, %ArgumentError{}}, 5_000
      {conn, frames} = sync!(conn)
      assert [{:headers, ^id, [{":status", "204"} | _], true}] = for_stream(frames, id)
      H2Client.close(conn)
    end

    test "stream_reply/3 and stream_body/3: DATA as it comes, :fin ends it", %{conn: conn} do
      test = self()
      {conn, id} = get(conn, "/")

      serve(fn req ->
        req = Req.stream_reply(200, %{"content-type" => "text/event-stream"}, req)
        send(test, {:body, Req.stream_body("one ", :nofin, req)})
        send(test, {:body, Req.stream_body(["tw", "o "], :nofin, req)})
        send(test, {:body, Req.stream_body("three", :fin, req)})
        req
      end)

      for _ <- 1..3, do: assert_receive({:body, :ok}, 5_000)
      {_conn, frames} = sync!(conn)

      assert [
               {:headers, ^id, [{":status", "200"} | headers], false},
               {:data, ^id, "one ", false},
               {:data, ^id, "two ", false},
               {:data, ^id, "three", true}
             ] = for_stream(frames, id)

      assert {"content-type", "text/event-stream"} in headers
      refute List.keymember?(headers, "content-length", 0)
    end

    test "stream_trailers/2 ends the response with trailers", %{conn: conn} do
      test = self()
      {conn, id} = get(conn, "/")

      serve(fn req ->
        req = Req.stream_reply(200, %{"trailer" => "x-checksum"}, req)
        :ok = Req.stream_body("data", :nofin, req)
        send(test, {:trailers, Req.stream_trailers(%{"x-checksum" => "abc"}, req)})
        req
      end)

      assert_receive {:trailers, :ok}, 5_000

      assert {:ok, _conn, %{status: 200, body: "data", trailers: [{"x-checksum", "abc"}]}} =
               H2Client.read_response(conn, id)
    end

    test "a handler that returns without answering gets 204; an unfinished stream is ended", %{
      conn: conn
    } do
      {conn, id} = get(conn, "/")
      serve(& &1)
      {conn, 204} = status(conn, id)

      {conn, id} = get(conn, "/")

      serve(fn req ->
        req = Req.stream_reply(200, req)
        :ok = Req.stream_body("partial", :nofin, req)
        req
      end)

      assert {:ok, _, %{status: 200, body: "partial"}} = H2Client.read_response(conn, id)
    end

    test "reply/4 with a large body goes out as flow control allows", %{conn: conn} do
      # The client's windows are the defaults, 65,535: the body waits for WINDOW_UPDATEs.
      body = :binary.copy("0123456789abcdef", 20_000)
      {conn, id} = get(conn, "/")
      serve(&Req.reply(200, %{}, body, &1))
      assert {:ok, conn, 65_535} = read_data(conn, id, 0, 65_535)
      :ok = H2Client.send_window_update(conn, 0, byte_size(body))
      :ok = H2Client.send_window_update(conn, id, byte_size(body))
      assert {:ok, _conn, 320_000} = read_data(conn, id, 65_535, byte_size(body))
    end

    test "a response to HEAD has no content: the headers end the stream", %{conn: conn} do
      test = self()
      {:ok, conn, id} = H2Client.request(conn, "HEAD", "/")
      {pid, _} = serve(&Req.reply(200, %{"content-type" => "text/plain"}, "ten bytes!", &1))
      await_exit(pid)
      {conn, frames} = sync!(conn)
      assert [{:headers, ^id, [{":status", "200"} | headers], true}] = for_stream(frames, id)
      assert {"content-length", "10"} in headers

      {:ok, conn, id} = H2Client.request(conn, "HEAD", "/")

      {pid, _} =
        serve(fn req ->
          req = Req.stream_reply(200, req)

          send(
            test,
            {:head, Req.stream_body("dropped", :nofin, req),
             Req.stream_trailers(%{"x" => "y"}, req)}
          )

          req
        end)

      assert_receive {:head, :ok, :ok}, 5_000
      await_exit(pid)
      {_conn, frames} = sync!(conn)
      assert [{:headers, ^id, [{":status", "200"} | _], true}] = for_stream(frames, id)
    end

    test "Req.reset/2 sends RST_STREAM with the code", %{conn: conn} do
      {conn, id} = get(conn, "/")

      serve(fn req ->
        :ok = Req.reset(req, :cancel)
        req
      end)

      assert {:error, _, {:rst_stream, :cancel}} = H2Client.read_response(conn, id)
    end

    test "invalid answers raise in the handler: 1xx status, bad header names or values", %{
      conn: conn,
      server: server
    } do
      test = self()

      bad = [
        fn req -> Req.reply(101, req) end,
        fn req -> Req.reply(200, %{"Content-Type" => "text/plain"}, "", req) end,
        fn req -> Req.reply(200, %{"connection" => "close"}, "", req) end,
        fn req -> Req.reply(200, %{"x-a" => "line\r\nbreak"}, "", req) end,
        fn req -> Req.stream_reply(200, %{":status" => "200"}, req) end,
        fn req -> Req.reply(600, req) end
      ]

      log =
        capture_log(fn ->
          conn =
            Enum.reduce(bad, conn, fn fun, conn ->
              {conn, id} = get(conn, "/")
              serve(fn req -> send(test, {:raised, catch_error(fun.(req))}) && fun.(req) end)
              assert_receive {:raised, %ArgumentError{}}, 5_000
              {conn, 500} = status(conn, id)
              conn
            end)

          # Trailers are checked too; the response was started, so the stream is reset.
          {conn, id} = get(conn, "/")

          serve(fn req ->
            req = Req.stream_reply(200, req)
            Req.stream_trailers(%{"Bad Name" => "x"}, req)
          end)

          assert {:error, conn, {:rst_stream, :internal_error}} = H2Client.read_response(conn, id)

          # Should the engine refuse a response all the same (here one that bypasses Req's
          # checks), the handler is stopped like a crashed one; the connection is unharmed.
          {conn, id} = get(conn, "/")

          {pid, _} =
            serve(fn req ->
              send(
                req.conn,
                {:"$h2flow", self(), nil, req.stream_id, {:reply, "200", [{"B", "x"}], ""}}
              )

              receive(do: (:never -> req))
            end)

          # It may be stopped before the monitor is in place (then the reason is :noproc).
          ref = Process.monitor(pid)
          {conn, 500} = status(conn, id)

          assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:killed, :noproc],
                         5_000

          {conn, id} = get(conn, "/")
          serve(&Req.reply(200, %{}, "still here", &1))
          assert {:ok, _, %{status: 200, body: "still here"}} = H2Client.read_response(conn, id)
        end)

      assert log =~ "ArgumentError"
      assert log =~ "handler of stream 15 sent an invalid response: uppercase field name"
      assert stat(server, :handler_crashes) == length(bad) + 2
      assert [_] = connections(server)
    end
  end

  defmodule Minimal do
    # A handler with init/2 only: terminate/3 is optional.
    @behaviour H2Flow.Handler

    @impl true
    def init(req, test) do
      send(test, {:minimal, Req.stream_id(req)})
      {:ok, Req.reply(200, %{}, "minimal", req), test}
    end
  end

  describe "handler lifecycle" do
    test "a handler without terminate/3" do
      {_server, port} = start_server!(self(), handler: Minimal)
      conn = connect!(port)
      {conn, id} = get(conn, "/")
      assert {:ok, _, %{status: 200, body: "minimal"}} = H2Client.read_response(conn, id)
      assert_receive {:minimal, ^id}, 5_000
    end

    test "terminate/3 runs after init/2 returns, and after a crash", %{port: _} do
      test = self()

      fun = fn req ->
        if Req.path(req) == "/crash", do: raise("boom"), else: Req.reply(200, req)
      end

      {_server, port} = start_server!({fun, test})
      conn = connect!(port)

      {conn, id} = get(conn, "/ok")
      {conn, 200} = status(conn, id)
      assert_receive {:terminate, ^id, :normal}, 5_000

      capture_log(fn ->
        {conn, id} = get(conn, "/crash")
        {_conn, 500} = status(conn, id)
        assert_receive {:terminate, ^id, {:crash, :error, %RuntimeError{message: "boom"}}}, 5_000
      end)
    end

    test "a crash before answering is a 500; once streaming, RST_STREAM INTERNAL_ERROR; the " <>
           "connection and its other streams carry on; the crash is logged once",
         %{conn: conn, server: server} do
      {conn, other} = get(conn, "/other")

      {other_pid, _} =
        serve(fn req -> receive(do: (:go -> Req.reply(200, %{}, "other", req))) end)

      log =
        capture_log(fn ->
          {conn, id} = get(conn, "/raise")
          serve(fn _req -> raise "handler bug" end)
          assert {:ok, conn, %{status: 500, body: ""}} = H2Client.read_response(conn, id)

          {conn, id} = get(conn, "/exit")
          serve(fn _req -> exit(:oops) end)
          assert {:ok, conn, %{status: 500}} = H2Client.read_response(conn, id)

          {conn, id} = get(conn, "/bad_return")
          serve(fn _req -> :not_a_req end)
          {conn, 500} = status(conn, id)

          {conn, id} = get(conn, "/streaming")

          serve(fn req ->
            req = Req.stream_reply(200, req)
            :ok = Req.stream_body("half", :nofin, req)
            throw(:midway)
          end)

          assert {:error, conn, {:rst_stream, :internal_error}} = H2Client.read_response(conn, id)
          send(other_pid, :go)
          assert {:ok, _conn, %{status: 200, body: "other"}} = H2Client.read_response(conn, other)
        end)

      for what <- ["handler bug", ":oops", "returned {:ok, :not_a_req", ":midway"] do
        assert [_] = Regex.scan(~r/#{Regex.escape(what)}/, log)
      end

      # A wrong return value is told what was expected.
      assert log =~ "init/2 returned {:ok, :not_a_req, "
      assert log =~ "on GET /bad_return (stream "
      assert log =~ "expected {:ok, req, state}"

      assert %{handler_crashes: 4, handlers_stopped: 0, connections: 1} = H2Flow.stats(server)
    end
  end

  describe "calls on a stream that is gone" do
    test "return {:error, :closed} or do nothing; the connection carries on", %{
      conn: conn,
      server: server
    } do
      test = self()
      {conn, id} = get(conn, "/")
      {_, _} = serve(fn req -> send(test, {:req, req}) && Req.stream_reply(200, req) end)
      assert_receive {:req, stale}, 5_000
      assert {:ok, conn, %{status: 200}} = H2Client.read_response(conn, id)

      # The stream is finished; these come from the test process, not from its handler.
      streaming = %{stale | resp: :streaming}
      assert {:error, :closed} = Req.read_body(%{stale | has_body: true})
      assert {:error, :closed} = Req.stream_body("late", :fin, streaming)
      assert {:error, :closed} = Req.stream_trailers(%{"x" => "y"}, streaming)
      assert %Req{} = Req.reply(200, %{}, "late", stale)
      assert %Req{} = Req.stream_reply(200, stale)
      assert :ok = Req.reset(stale)

      {conn, frames} = sync!(conn)
      assert for_stream(frames, id) == []
      {conn, id} = get(conn, "/")
      serve(&Req.reply(200, %{}, "fine", &1))
      assert {:ok, _, %{status: 200, body: "fine"}} = H2Client.read_response(conn, id)
      assert [_] = connections(server)
    end
  end

  # --- helpers -----------------------------------------------------------------------------

  # Opens a POST whose body the test sends itself (HEADERS without END_STREAM).
  defp open(conn) do
    id = conn.next_stream_id

    headers = [
      {":method", "POST"},
      {":scheme", "http"},
      {":authority", "#{conn.host}:#{conn.port}"},
      {":path", "/"}
    ]

    :ok = H2Client.send_headers(conn, id, headers, false)
    {%{conn | next_stream_id: id + 2}, id}
  end

  # Waits for a handler to return: what it sent is with the connection by then.
  defp await_exit(pid) do
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, :process, ^pid, _}, 5_000
  end

  defp status(conn, id) do
    assert {:ok, conn, %{status: status}} = H2Client.read_response(conn, id)
    {conn, status}
  end

  defp for_stream(frames, id) do
    Enum.filter(frames, fn frame ->
      elem(frame, 0) in [:headers, :data, :rst_stream] and elem(frame, 1) == id
    end)
  end

  # Reads DATA of stream `id` until `want` bytes in all (counting from `got`).
  defp read_data(conn, _id, got, want) when got >= want, do: {:ok, conn, got}

  defp read_data(conn, id, got, want) do
    case H2Client.recv(conn) do
      {:ok, conn, {:data, ^id, data, _}} -> read_data(conn, id, got + byte_size(data), want)
      {:ok, conn, _other} -> read_data(conn, id, got, want)
      error -> error
    end
  end

  defp read_until_some(req) do
    case Req.read_body(req, length: 1_000_000, period: 30) do
      {:more, "", req} -> read_until_some(req)
      {:more, data, req} -> {data, req}
    end
  end
end
