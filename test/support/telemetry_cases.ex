defmodule H2Flow.Test.TelemetryCases do
  @moduledoc false
  # The telemetry tests, run against the real :telemetry library (telemetry_library_test.exs,
  # tag :telemetry) and against a stand-in (telemetry_test.exs, tag :no_telemetry): every event
  # of H2Flow.Telemetry's table, over real sockets. Each test's server has its own
  # :telemetry_metadata, and its handler forwards only the events that carry it.

  @events [
    [:h2flow, :request, :start],
    [:h2flow, :request, :stop],
    [:h2flow, :request, :exception],
    [:h2flow, :connection, :start],
    [:h2flow, :connection, :stop],
    [:h2flow, :defence],
    [:h2flow, :flow_control, :stall]
  ]

  def events, do: @events

  @doc "The telemetry handler: forwards the events of one test's servers to the test."
  def forward(event, measurements, metadata, {test, ref}) do
    if metadata[:test] == ref, do: send(test, {:telemetry, event, measurements, metadata})
  end

  defmacro __using__(tag: tag) do
    quote do
      use ExUnit.Case, async: true

      @moduletag unquote(tag)

      import ExUnit.CaptureLog
      import H2Flow.Test.ServerHelpers

      alias H2Flow.Req
      alias H2Flow.Test.H2Client

      @compile {:no_warn_undefined, :telemetry}

      setup do
        ref = make_ref()
        id = "h2flow-test-#{inspect(ref)}"
        events = H2Flow.Test.TelemetryCases.events()
        fun = &H2Flow.Test.TelemetryCases.forward/4
        :ok = :telemetry.attach_many(id, events, fun, {self(), ref})
        on_exit(fn -> :telemetry.detach(id) end)
        %{meta: %{test: ref, listener: :ops}}
      end

      defp start!(fun, meta, opts \\ []) do
        start_server!(fun, [telemetry_metadata: meta] ++ opts)
      end

      test "the server emits events: :telemetry is started" do
        assert H2Flow.Telemetry.enabled?()
      end

      test "a request span: start and stop, with body byte counts and the server's metadata",
           %{meta: meta} do
        {_server, port} =
          start!(
            fn req ->
              {:ok, body, req} = Req.read_body(req)
              Req.reply(200, %{}, body <> "!!", req)
            end,
            meta
          )

        conn = connect!(port)
        {:ok, peer} = :inet.sockname(conn.socket)
        {:ok, conn, id} = H2Client.request(conn, "POST", "/echo", [], "hello")
        assert {:ok, _, %{status: 200, body: "hello!!"}} = H2Client.read_response(conn, id)

        assert_receive {:telemetry, [:h2flow, :request, :start], %{monotonic_time: t0}, start},
                       5_000

        assert %{
                 method: "POST",
                 path: "/echo",
                 version: :"HTTP/2",
                 stream_id: ^id,
                 peer: ^peer,
                 handler: H2Flow.Test.FunHandler,
                 listener: :ops
               } = start

        assert_receive {:telemetry, [:h2flow, :request, :stop], m, stop}, 5_000
        assert %{req_body_bytes: 5, resp_body_bytes: 7, duration: d, monotonic_time: t1} = m
        assert is_integer(d) and d >= 0 and t1 >= t0
        assert %{status: 200, error: nil, method: "POST", stream_id: ^id, listener: :ops} = stop
        refute_received {:telemetry, [:h2flow, :request, :exception], _, _}
      end

      test "a handler that crashes: :exception with the crash; one reset by the peer: :stop " <>
             "with error: :stream_reset",
           %{meta: meta} do
        test = self()

        {_server, port} =
          start!(
            fn req ->
              case Req.path(req) do
                "/crash" ->
                  raise "boom"

                _ ->
                  wait_for_go(test, req)
                  req
              end
            end,
            meta
          )

        conn = connect!(port)

        {conn, _log} =
          with_log(fn ->
            {:ok, conn, id} = H2Client.request(conn, "GET", "/crash")
            assert {:ok, conn, %{status: 500}} = H2Client.read_response(conn, id)
            conn
          end)

        assert_receive {:telemetry, [:h2flow, :request, :exception], %{duration: _}, meta}, 5_000
        assert %{kind: :error, reason: %RuntimeError{message: "boom"}, status: 500} = meta
        assert [_ | _] = meta.stacktrace

        {:ok, conn, id} = H2Client.request(conn, "GET", "/wait")
        [_] = waiting(1)
        :ok = H2Client.send_rst_stream(conn, id, :cancel)

        assert_receive {:telemetry, [:h2flow, :request, :stop], _, %{stream_id: ^id} = stop},
                       5_000

        assert %{error: :stream_reset, status: nil, path: "/wait"} = stop
      end

      test "a connection span: start, then stop with its flow-control counters", %{meta: meta} do
        {_server, port} = start!(&Req.reply(200, %{}, "ok", &1), meta)
        conn = connect!(port)
        {:ok, peer} = :inet.sockname(conn.socket)
        {:ok, conn, id} = H2Client.request(conn, "GET", "/")
        assert {:ok, conn, %{status: 200}} = H2Client.read_response(conn, id)

        assert_receive {:telemetry, [:h2flow, :connection, :start], %{monotonic_time: _},
                        %{peer: ^peer, transport: :tcp, listener: :ops}},
                       5_000

        H2Client.close(conn)
        assert_receive {:telemetry, [:h2flow, :connection, :stop], m, stop}, 5_000
        assert %{peer: ^peer, transport: :tcp, protocol: :http2, reason: :closed} = stop

        assert %{
                 streams: 1,
                 stalls: 0,
                 peak_buffered_bytes: 0,
                 duration: d,
                 window_updates_sent: wu,
                 bytes_received: received,
                 bytes_sent: sent
               } = m

        # The preface's WINDOW_UPDATE, opening the connection window to 1 MiB.
        assert wu == 1 and d > 0 and received > 24 and sent > 0
      end

      test "HTTP/1.1: request spans with the version, a connection span with its protocol",
           %{meta: meta} do
        {_server, port} =
          start!(
            fn req ->
              {:ok, body, req} = Req.read_body(req)
              Req.reply(200, %{}, body <> "!", req)
            end,
            meta
          )

        {:ok, sock} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
        {:ok, peer} = :inet.sockname(sock)

        :ok =
          :gen_tcp.send(
            sock,
            "POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" <>
              "GET /b HTTP/1.0\r\n\r\n"
          )

        for {path, version, id} <- [{"/a", :"HTTP/1.1", 1}, {"/b", :"HTTP/1.0", 2}] do
          assert_receive {:telemetry, [:h2flow, :request, :start], _,
                          %{path: ^path, version: ^version, stream_id: ^id, peer: ^peer}},
                         5_000

          assert_receive {:telemetry, [:h2flow, :request, :stop], m,
                          %{path: ^path, version: ^version, status: 200, error: nil}},
                         5_000

          if path == "/a", do: assert(%{req_body_bytes: 3, resp_body_bytes: 4} = m)
        end

        # HTTP/1.0 without keep-alive: the connection ends after the second response.
        assert_receive {:telemetry, [:h2flow, :connection, :stop], m, stop}, 5_000
        assert %{peer: ^peer, protocol: :http1, reason: :done, transport: :tcp} = stop
        assert %{streams: 2, window_updates_sent: 0, bytes_received: received} = m
        assert received > 60
        :gen_tcp.close(sock)
      end

      test "a defence that trips: [:h2flow, :defence], once", %{meta: meta} do
        {_server, port} = start!(& &1, meta, peer_reset_rate: {10, 1})
        conn = connect!(port)
        {:ok, peer} = :inet.sockname(conn.socket)

        conn =
          Enum.reduce(1..20, conn, fn _, conn ->
            {:ok, conn, id} = H2Client.request(conn, "GET", "/")
            :ok = H2Client.send_rst_stream(conn, id, :cancel)
            conn
          end)

        assert {:ok, _conn, frames} =
                 H2Client.recv_until(conn, &match?({:goaway, _, :enhance_your_calm, _}, &1))

        assert [_] = Enum.filter(frames, &match?({:goaway, _, _, _}, &1))

        assert_receive {:telemetry, [:h2flow, :defence], %{count: 1},
                        %{defence: :rapid_reset, peer: ^peer, listener: :ops}},
                       5_000

        assert_receive {:telemetry, [:h2flow, :connection, :stop], _,
                        %{reason: {:connection_error, :enhance_your_calm, message}}},
                       5_000

        assert message =~ "CVE-2023-44487"

        refute_receive {:telemetry, [:h2flow, :defence], _, _}, 200
      end

      test "a send stall that times out: [:h2flow, :flow_control, :stall]", %{meta: meta} do
        {_server, port} =
          start!(&Req.reply(200, %{}, "never sent", &1), meta, send_stall_timeout: 100)

        # A stream window of 0: the response's DATA cannot go.
        conn = connect!(port, initial_window_size: 0)
        {:ok, peer} = :inet.sockname(conn.socket)
        {:ok, _conn, id} = H2Client.request(conn, "GET", "/")

        assert_receive {:telemetry, [:h2flow, :flow_control, :stall], %{count: 1},
                        %{stream_id: ^id, peer: ^peer, listener: :ops}},
                       5_000
      end

      test "H2Flow.Telemetry's moduledoc example runs" do
        H2Flow.Test.DocExamples.define_hello!()
        code = H2Flow.Test.DocExamples.moduledoc_blocks(H2Flow.Telemetry) |> hd()
        assert code =~ "port: 8080"
        code = code |> String.replace("port: 8080", "port: 0") |> H2Flow.Test.DocExamples.rename()
        {_, binding} = Code.eval_string(code)
        server = binding[:server]
        conn = connect!(H2Flow.port(server))
        {:ok, conn, id} = H2Client.request(conn, "POST", "/", [], "abc")
        assert {:ok, _, %{status: 200, body: "got 3"}} = H2Client.read_response(conn, id)
        H2Flow.stop(server)
        :ok = :telemetry.detach("log-slow-requests")
      end
    end
  end
end
