defmodule H2Flow.OperatingTest do
  # What operators meet: option errors that say what is wrong, idle_timeout: :infinity, the
  # startup line, Logger metadata on every log line about a stream (and no request body in
  # them), and answers sent from a process the handler started.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  require Logger

  alias H2Flow.Req
  alias H2Flow.Test.{FunHandler, H2Client, LogForwarder}

  describe "options" do
    test "a wrong value is shown with what is expected; an unknown key lists the valid ones" do
      for {opts, message} <- [
            {[port: "8080"], ~s(:port must be an integer in 0..65535, got: "8080")},
            {[idle_timeout: -1],
             ":idle_timeout must be a positive integer (milliseconds) or " <>
               ":infinity, got: -1"},
            {[startup_log: :loud], ":startup_log must be false or a Logger level, got: :loud"},
            {[telemetry_metadata: [a: 1]], ":telemetry_metadata must be a map, got: [a: 1]"},
            {[max_concurrent_streams: -1],
             ":max_concurrent_streams must be an integer in 0..4294967295, got: -1"}
          ] do
        error =
          assert_raise ArgumentError, fn -> H2Flow.start_link([handler: FunHandler] ++ opts) end

        assert Exception.message(error) == message
      end

      error =
        assert_raise ArgumentError, fn -> H2Flow.start_link(handler: FunHandler, prot: 80) end

      assert error.message =~ "unknown option :prot; the options are: "

      for key <- [
            :handler,
            :port,
            :shutdown_timeout,
            :telemetry_metadata,
            :max_concurrent_streams
          ],
          do: assert(error.message =~ inspect(key))

      # The value of :tls is never shown: it may hold a private key.
      error =
        assert_raise ArgumentError, fn ->
          H2Flow.start_link(handler: FunHandler, tls: %{key: "secret"})
        end

      refute error.message =~ "secret"
    end

    test "a handler module that does not exist is told apart from one without init/2" do
      error = assert_raise ArgumentError, fn -> H2Flow.start_link(handler: NoSuchHandler) end

      assert error.message =~
               "module NoSuchHandler is not available (not compiled, or not in the code path)"

      error = assert_raise ArgumentError, fn -> H2Flow.start_link(handler: String) end
      assert error.message =~ "String does not export init/2"
    end

    test "idle_timeout: :infinity keeps an idle connection open; the other timeouts still tick" do
      {_server, port} = start_server!(& &1, idle_timeout: :infinity, preface_timeout: 100)
      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      assert {:ok, conn, %{status: 204}} = H2Client.read_response(conn, id)
      # Ticks come every 25 ms (a quarter of the preface timeout): 20 of them, no GOAWAY.
      assert {:error, conn, :timeout} = H2Client.recv(conn, 500)
      {_conn, _} = sync!(conn)

      # A client that never sends its preface is still closed by the preface timeout.
      {:ok, silent} = H2Client.connect("127.0.0.1", port)
      assert {:error, _, :closed} = H2Client.recv(silent, 5_000)
    end

    test ":startup_log names the handler, transport, address and port" do
      log =
        capture_log(fn ->
          {_server, port} = start_server!(& &1, startup_log: :info)
          send(self(), {:port, port})
        end)

      assert_received {:port, port}

      assert log =~
               "h2flow: serving handler H2Flow.Test.FunHandler over h2c and HTTP/1.1 at " <>
                 "127.0.0.1:#{port}"

      # (Other tests' connections may log at :debug meanwhile.)
      refute capture_log(fn -> start_server!(& &1) end) =~ "h2flow: serving"
    end
  end

  describe "logs" do
    test "lines about a stream carry its metadata, from the handler and from the connection; " <>
           "no request body in them" do
      LogForwarder.attach()
      secret = String.duplicate("s3cr3t", 20_000)

      {_server, port} =
        start_server!(fn req ->
          case Req.path(req) do
            "/log" ->
              Logger.info("handler line")
              Req.reply(200, req)

            "/crash" ->
              {:ok, body, req} = Req.read_body(req)
              # A MatchError whose term is the body.
              :not_the_body = body
              req

            "/invalid" ->
              # Bypasses H2Flow.Req's checks: the engine refuses a pseudo-header here.
              send(
                req.conn,
                {:"$h2flow", self(), nil, req.stream_id, {:reply, "200", [{":bad", "x"}], ""}}
              )

              Process.sleep(:infinity)
          end
        end)

      conn = connect!(port)
      {:ok, peer} = :inet.sockname(conn.socket)
      peer = "127.0.0.1:#{elem(peer, 1)}"

      {conn, _} =
        with_log(fn ->
          {:ok, conn, id} = H2Client.request(conn, "GET", "/log")
          {:ok, conn, _} = H2Client.read_response(conn, id)
          {:ok, conn, id} = H2Client.request(conn, "POST", "/crash", [], secret)
          {:ok, conn, %{status: 500}} = H2Client.read_response(conn, id)
          {:ok, conn, id} = H2Client.request(conn, "GET", "/invalid")
          {:ok, conn, %{status: 500}} = H2Client.read_response(conn, id)
          conn
        end)

      lines = collect_logs(peer, 3)

      assert [
               {:info, "handler line", handler_meta},
               {:error, crash, crash_meta},
               {:error, invalid, invalid_meta}
             ] = lines

      assert %{h2flow_stream_id: 1, h2flow_method: "GET", h2flow_path: "/log"} = handler_meta
      assert %{h2flow_handler: FunHandler, h2flow_peer: ^peer} = handler_meta
      assert %{h2flow_stream_id: 3, h2flow_method: "POST", h2flow_path: "/crash"} = crash_meta
      assert crash =~ "MatchError"
      assert crash =~ "<120000 bytes not logged>"
      refute crash =~ "s3cr3t"
      # Logged by the connection process: the peer and the stream.
      assert %{h2flow_stream_id: 5, h2flow_peer: ^peer, h2flow_path: "/invalid"} = invalid_meta
      assert %{h2flow_method: "GET", h2flow_handler: FunHandler} = invalid_meta
      assert invalid =~ "sent an invalid response"
      H2Client.close(conn)
    end
  end

  # The log events of `peer`'s connection (by their metadata), in order.
  defp collect_logs(peer, n, acc \\ []) do
    if length(acc) == n do
      Enum.reverse(acc)
    else
      receive do
        {:log, level, message, %{h2flow_peer: ^peer} = meta} ->
          collect_logs(peer, n, [{level, message, meta} | acc])

        {:log, _, _, _} ->
          collect_logs(peer, n, acc)
      after
        5_000 -> flunk("#{n} log events expected, got: #{inspect(Enum.reverse(acc))}")
      end
    end
  end

  test "README, Operating h2flow: a supervised server stopped with terminate_child stays stopped" do
    H2Flow.Test.DocExamples.define_hello!()
    [code] = H2Flow.Test.DocExamples.readme_blocks("<!-- operating-example -->") |> Enum.take(1)
    assert code =~ "port: 8080"
    code = code |> String.replace("port: 8080", "port: 0") |> H2Flow.Test.DocExamples.rename()
    {_, binding} = Code.eval_string(code)
    assert [{_, :undefined, :supervisor, _}] = Supervisor.which_children(binding[:sup])
    Supervisor.stop(binding[:sup])
  end

  describe "answering from another process" do
    test "a Task replies, or streams a response, for the handler that waits for it" do
      {_server, port} =
        start_server!(fn req ->
          task =
            Task.async(fn ->
              case Req.path(req) do
                "/reply" ->
                  Req.reply(200, %{}, "from a task", req)

                "/stream" ->
                  req = Req.stream_reply(200, req)
                  :ok = Req.stream_body("from ", :nofin, req)
                  :ok = Req.stream_body(:binary.copy("a", 200_000), :nofin, req)
                  :ok = Req.stream_trailers(%{"x-done" => "yes"}, req)
                  req
              end
            end)

          Task.await(task)
        end)

      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/reply")
      assert {:ok, conn, %{status: 200, body: "from a task"}} = H2Client.read_response(conn, id)
      :ok = H2Client.send_window_update(conn, 0, 1_000_000)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/stream")
      :ok = H2Client.send_window_update(conn, id, 1_000_000)

      assert {:ok, _conn, %{status: 200, body: body, trailers: trailers}} =
               H2Client.read_response(conn, id)

      assert body == "from " <> :binary.copy("a", 200_000)
      assert {"x-done", "yes"} in trailers
    end

    test "once the handler has returned, the stream is done: 204, and the Task is told :closed" do
      test = self()

      {_server, port} =
        start_server!(fn req ->
          spawn(fn ->
            receive do
              :go ->
                req = Req.stream_reply(200, req)
                send(test, {:late, Req.stream_body("too late", :fin, req)})
            end
          end)
          |> then(&send(test, {:task, &1}))

          req
        end)

      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      assert {:ok, _conn, %{status: 204}} = H2Client.read_response(conn, id)
      assert_receive {:task, task}
      send(task, :go)
      assert_receive {:late, {:error, :closed}}, 5_000
    end

    test "read_body/2 from another process raises, saying why" do
      test = self()

      {_server, port} =
        start_server!(fn req ->
          task_result =
            Task.async(fn ->
              try do
                Req.read_body(req)
              rescue
                e in ArgumentError -> {:raised, e.message}
              end
            end)
            |> Task.await()

          send(test, {:task_result, task_result})
          {:ok, body, req} = Req.read_body(req)
          Req.reply(200, %{}, body, req)
        end)

      conn = connect!(port)
      id = conn.next_stream_id
      pseudo = [{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}]
      :ok = H2Client.send_headers(conn, id, pseudo, false)
      conn = %{conn | next_stream_id: id + 2}
      assert_receive {:task_result, {:raised, message}}, 5_000
      assert message =~ "not by the handler of stream 1"
      :ok = H2Client.send_data(conn, id, "still readable by the handler", true)

      assert {:ok, _, %{status: 200, body: "still readable by the handler"}} =
               H2Client.read_response(conn, id)
    end

    test "H2Flow.Req's moduledoc example: a Task streams the response" do
      [_, code] = H2Flow.Test.DocExamples.moduledoc_blocks(H2Flow.Req)

      Code.eval_string("""
      defmodule H2Flow.OperatingTest.TaskHandler do
        @behaviour H2Flow.Handler
        #{code}
      end
      """)

      {:ok, server} =
        H2Flow.start_link(handler: H2Flow.OperatingTest.TaskHandler, port: 0, ip: {127, 0, 0, 1})

      conn = connect!(H2Flow.port(server))
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      assert {:ok, _, %{status: 200, body: "from a task"}} = H2Client.read_response(conn, id)
      H2Flow.stop(server)
    end
  end
end
