defmodule H2Flow.Test.App do
  @moduledoc false
  # A test application whose supervision tree holds one h2flow server (start/2 tells the test
  # its supervisor), as an application of a release would.
  use Application

  @impl true
  def start(_type, {test, opts}) do
    {:ok, sup} = Supervisor.start_link([{H2Flow, opts}], strategy: :one_for_one)
    send(test, {:app_started, sup})
    {:ok, sup}
  end
end

defmodule H2Flow.ShutdownTest do
  # Stopping a server drains it, whoever stops it (its application, a supervisor, stop/1):
  # listener closed, GOAWAY (NO_ERROR, last stream id), in-flight streams finish within
  # :shutdown_timeout, then everything closes. Over real sockets, with curl and the raw client.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.{FunHandler, H2Client}

  @mb 1_000_000

  # Starts an application whose tree runs an h2flow server with `fun` as its handler.
  defp start_app!(fun, opts \\ []) do
    app = :"h2flow_test_app_#{System.unique_integer([:positive])}"
    server_opts = [handler: FunHandler, handler_opts: fun, port: 0, ip: {127, 0, 0, 1}] ++ opts

    spec = [
      description: ~c"h2flow test application",
      vsn: ~c"0",
      modules: [H2Flow.Test.App],
      registered: [],
      applications: [:kernel, :stdlib, :ssl],
      mod: {H2Flow.Test.App, {self(), server_opts}}
    ]

    :ok = :application.load({:application, app, spec})
    :ok = Application.start(app)
    assert_receive {:app_started, sup}
    on_exit(fn -> Application.stop(app) && :application.unload(app) end)
    [{{H2Flow, _}, server, :supervisor, _}] = Supervisor.which_children(sup)
    {app, server, H2Flow.port(server)}
  end

  # Reads the response body of stream 1, crediting each DATA frame back at once, until the end
  # of the stream or until `stop?.(bytes so far)`; returns the byte count and the other frames.
  defp download(conn, got, others, stop?) do
    if stop?.(got) do
      {conn, got, others}
    else
      case H2Client.recv(conn, 10_000) do
        {:ok, conn, {:data, 1, data, fin?}} ->
          if data != "" do
            :ok = H2Client.send_window_update(conn, 0, byte_size(data))
            :ok = H2Client.send_window_update(conn, 1, byte_size(data))
          end

          got = got + byte_size(data)
          if fin?, do: {conn, got, others}, else: download(conn, got, others, stop?)

        {:ok, conn, other} ->
          download(conn, got, [other | others], stop?)
      end
    end
  end

  defp curl(args), do: Task.async(fn -> System.cmd("curl", ["-sS" | args]) end)

  test "the application stops mid-request: a 2-second handler answers 200 all the same" do
    test = self()

    {app, server, port} =
      start_app!(fn req ->
        send(test, :handler_started)
        Process.sleep(2_000)
        Req.reply(200, %{}, "slept", req)
      end)

    url = "http://127.0.0.1:#{port}/slow"
    client = curl(["--http2-prior-knowledge", "-w", " %{http_code}", url])
    assert_receive :handler_started, 5_000
    ref = Process.monitor(server)

    :ok = Application.stop(app)

    # Application.stop/1 returned once the server had drained.
    assert_received {:DOWN, ^ref, :process, ^server, _}
    assert {"slept 200", 0} = Task.await(client, 10_000)
  end

  test "SIGTERM to a VM whose application runs the server: the request in flight gets its 200" do
    elixir = System.find_executable("elixir") || flunk("elixir is not on PATH")
    ebin = :code.lib_dir(:h2flow, :ebin) |> to_string()
    script = Path.expand("../support/sigterm_app.exs", __DIR__)

    vm =
      Port.open({:spawn_executable, elixir}, [
        :binary,
        :exit_status,
        {:line, 1_000},
        args: ["-pa", ebin, script]
      ])

    {:os_pid, os_pid} = Port.info(vm, :os_pid)
    assert_receive {^vm, {:data, {:eol, "port " <> port}}}, 30_000
    client = curl(["--http2-prior-knowledge", "-w", " %{http_code}", "http://127.0.0.1:#{port}/"])
    assert_receive {^vm, {:data, {:eol, "handler started"}}}, 10_000

    {_, 0} = System.cmd("kill", ["-TERM", "#{os_pid}"])
    assert {"slept 200", 0} = Task.await(client, 10_000)
    assert_receive {^vm, {:exit_status, 0}}, 30_000
  end

  test "the application stops mid-download: the client gets all of a 10 MB body" do
    body = :binary.copy("0123456789", @mb)
    {app, _server, port} = start_app!(&Req.reply(200, %{}, body, &1))

    # The client's windows (64 KiB) hold the response back: it can only go as the client
    # reads and gives credit, so the stop comes with almost all of it still to send.
    conn = connect!(port)
    {:ok, conn, 1} = H2Client.request(conn, "GET", "/big")
    {conn, first, _} = download(conn, 0, [], fn got -> got > 0 end)
    stopper = Task.async(fn -> Application.stop(app) end)
    {conn, total, others} = download(conn, first, [], fn _ -> false end)

    assert total == 10 * @mb
    assert Enum.any?(others, &match?({:goaway, 1, :no_error, _}, &1))
    assert {:error, _, :closed} = H2Client.recv(conn, 5_000)
    assert :ok = Task.await(stopper, 10_000)
  end

  test "a supervisor terminating the server: GOAWAY, the stream in flight completes, new " <>
         "connections are refused" do
    test = self()

    fun = fn req ->
      wait_for_go(test, req)
      Req.reply(200, %{}, "finished", req)
    end

    spec = {H2Flow, handler: FunHandler, handler_opts: fun, port: 0, ip: {127, 0, 0, 1}}

    sup =
      start_supervised!(%{
        id: :sup,
        start: {Supervisor, :start_link, [[spec], [strategy: :one_for_one]]},
        type: :supervisor
      })

    [{id, server, :supervisor, _}] = Supervisor.which_children(sup)
    port = H2Flow.port(server)
    conn = connect!(port)
    {:ok, conn, 1} = H2Client.request(conn, "GET", "/")
    [{handler, _}] = waiting(1)

    stopper = Task.async(fn -> Supervisor.terminate_child(sup, id) end)
    assert {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:goaway, _, _, _}, &1))
    assert {:goaway, 1, :no_error, _} = List.last(frames)
    assert {:error, :econnrefused} = :gen_tcp.connect(~c"127.0.0.1", port, [])
    refute Task.yield(stopper, 0)

    send(handler, :go)
    assert {:ok, conn, %{status: 200, body: "finished"}} = H2Client.read_response(conn, 1)
    assert {:error, _, :closed} = H2Client.recv(conn, 5_000)
    assert :ok = Task.await(stopper)
    # Terminated, not restarted.
    assert [{^id, :undefined, :supervisor, _}] = Supervisor.which_children(sup)
  end

  test "child specs let the server drain: :shutdown_timeout plus a margin" do
    assert %{shutdown: 20_000, type: :supervisor} = H2Flow.child_spec(handler: FunHandler)

    assert %{shutdown: 6_000} = H2Flow.child_spec(handler: FunHandler, shutdown_timeout: 1_000)

    assert [%{shutdown: 7_000}] =
             H2Flow.PhoenixAdapter.child_specs(MyEndpoint,
               otp_app: :h2flow,
               http: [port: 0, shutdown_timeout: 2_000]
             )
  end
end
