defmodule H2Flow.PhoenixAdapterOptionsTest do
  # H2Flow.PhoenixAdapter's mapping of http:/https: configuration, without Phoenix.
  use ExUnit.Case, async: true

  alias H2Flow.PhoenixAdapter

  doctest PhoenixAdapter

  test "child_specs/2: one h2flow server per scheme configured, TLS options gathered" do
    config = [
      otp_app: :h2flow,
      http: [ip: {127, 0, 0, 1}, port: {:system, "H2FLOW_TEST_UNSET_PORT"}],
      https: [
        port: "4443",
        cipher_suite: :strong,
        certfile: "priv/cert.pem",
        keyfile: "/etc/key.pem",
        max_concurrent_streams: 50
      ],
      code_reloader: false
    ]

    # An unset {:system, var} port: the error names the scheme.
    assert_raise ArgumentError, ~r/http: :port must be an integer/, fn ->
      PhoenixAdapter.child_specs(MyEndpoint, config)
    end

    config = put_in(config[:http][:port], 4000)
    [http, https] = PhoenixAdapter.child_specs(MyEndpoint, config)

    assert %{
             id: {MyEndpoint, :http},
             type: :supervisor,
             start: {PhoenixAdapter, :start_link, args}
           } = http

    assert args == [:http, MyEndpoint, [plug: MyEndpoint, port: 4000, ip: {127, 0, 0, 1}]]

    assert %{id: {MyEndpoint, :https}, start: {_, _, [:https, MyEndpoint, opts]}} = https

    assert opts == [
             plug: MyEndpoint,
             port: 4443,
             transport: :tls,
             tls: [
               certfile: Path.join(Application.app_dir(:h2flow), "priv/cert.pem"),
               keyfile: "/etc/key.pem"
             ],
             max_concurrent_streams: 50
           ]

    assert PhoenixAdapter.child_specs(MyEndpoint, otp_app: :h2flow, http: false) == []
  end
end

if Code.ensure_loaded?(Phoenix.Endpoint) do
  # Compile-time configuration of the endpoint (the rest is given when the test starts it).
  Application.put_env(:h2flow, H2Flow.PhoenixTest.Endpoint,
    render_errors: [formats: [json: H2Flow.PhoenixTest.ErrorJSON]]
  )

  defmodule H2Flow.PhoenixTest.HelloController do
    use Phoenix.Controller, formats: [:json]

    def show(conn, %{"name" => name}) do
      json(conn, %{hello: name, protocol: Plug.Conn.get_http_protocol(conn)})
    end

    def echo(conn, params), do: text(conn, "#{params["a"]} #{params["b"]}")

    def slow(conn, _params) do
      send(Application.fetch_env!(:h2flow, :phoenix_test_notify), :slow_started)
      Process.sleep(1_000)
      text(conn, "slow")
    end
  end

  defmodule H2Flow.PhoenixTest.ErrorJSON do
    def render(template, _assigns), do: %{error: template}
  end

  defmodule H2Flow.PhoenixTest.Router do
    use Phoenix.Router

    get("/hello/:name", H2Flow.PhoenixTest.HelloController, :show)
    post("/echo", H2Flow.PhoenixTest.HelloController, :echo)
    get("/slow", H2Flow.PhoenixTest.HelloController, :slow)
  end

  defmodule H2Flow.PhoenixTest.Endpoint do
    use Phoenix.Endpoint, otp_app: :h2flow

    plug(Plug.Parsers, parsers: [:urlencoded, :json], json_decoder: Jason)
    plug(H2Flow.PhoenixTest.Router)
  end
end

defmodule H2Flow.PhoenixTest do
  # A Phoenix 1.7 endpoint (PHOENIX_EBIN) with adapter: H2Flow.PhoenixAdapter, serving a
  # controller to curl over h2c and over TLS.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias H2Flow.PhoenixTest.Endpoint

  @moduletag :phoenix

  @compile {:no_warn_undefined, [Endpoint, Jason]}

  test "a controller over h2c and h2 (TLS), started by the endpoint's supervisor" do
    config = [
      adapter: H2Flow.PhoenixAdapter,
      server: true,
      secret_key_base: String.duplicate("k", 64),
      url: [host: "localhost"],
      http: [ip: {127, 0, 0, 1}, port: 0],
      https: [ip: {127, 0, 0, 1}, port: 0] ++ H2Flow.TLS.self_signed()
    ]

    compiled = Application.get_env(:h2flow, Endpoint)
    Application.put_env(:h2flow, Endpoint, compiled ++ config)
    on_exit(fn -> Application.put_env(:h2flow, Endpoint, compiled) end)

    log = capture_log(fn -> start_supervised!(Endpoint) end)
    assert log =~ ~r/Running H2Flow.PhoenixTest.Endpoint with h2flow at 127.0.0.1:\d+ \(http\)/
    assert log =~ ~r/Running H2Flow.PhoenixTest.Endpoint with h2flow at 127.0.0.1:\d+ \(https\)/

    {:ok, {{127, 0, 0, 1}, http}} = Endpoint.server_info(:http)
    {:ok, {{127, 0, 0, 1}, https}} = Endpoint.server_info(:https)

    # Phoenix logs each request (at debug level).
    capture_log(fn ->
      {out, 0} = curl(["--http2-prior-knowledge", "http://127.0.0.1:#{http}/hello/h2c"])
      assert Jason.decode!(out) == %{"hello" => "h2c", "protocol" => "HTTP/2"}

      {out, 0} = curl(["-k", "--http2", "https://localhost:#{https}/hello/tls"])
      assert Jason.decode!(out) == %{"hello" => "tls", "protocol" => "HTTP/2"}

      # HTTP/1.1 on the same ports.
      {out, 0} = curl(["http://127.0.0.1:#{http}/hello/h1"])
      assert Jason.decode!(out) == %{"hello" => "h1", "protocol" => "HTTP/1.1"}
      {out, 0} = curl(["-k", "--http1.1", "https://localhost:#{https}/hello/tls1"])
      assert Jason.decode!(out) == %{"hello" => "tls1", "protocol" => "HTTP/1.1"}

      {out, 0} = curl(["-k", "--http2", "-d", "a=1&b=two", "https://localhost:#{https}/echo"])
      assert out == "1 two"

      # Phoenix's own error handling: an unknown route is a 404 (Phoenix.Router.NoRouteError).
      {out, 0} = curl(["--http2-prior-knowledge", "-i", "http://127.0.0.1:#{http}/nope"])
      assert out =~ ~r/\AHTTP\/2 404 \r\n/
      assert String.ends_with?(out, ~s({"error":"404.json"}))
    end)
  end

  test "stopping the endpoint drains its server: a request in flight gets its response" do
    config = [
      adapter: H2Flow.PhoenixAdapter,
      server: true,
      secret_key_base: String.duplicate("k", 64),
      url: [host: "localhost"],
      http: [ip: {127, 0, 0, 1}, port: 0]
    ]

    compiled = Application.get_env(:h2flow, Endpoint)
    Application.put_env(:h2flow, Endpoint, compiled ++ config)
    Application.put_env(:h2flow, :phoenix_test_notify, self())

    on_exit(fn ->
      Application.put_env(:h2flow, Endpoint, compiled)
      Application.delete_env(:h2flow, :phoenix_test_notify)
    end)

    capture_log(fn ->
      start_supervised!(Endpoint)
      {:ok, {_, http}} = Endpoint.server_info(:http)

      client =
        Task.async(fn ->
          curl(["--http2-prior-knowledge", "-w", " %{http_code}", "http://127.0.0.1:#{http}/slow"])
        end)

      assert_receive :slow_started, 5_000
      :ok = stop_supervised(Endpoint)
      assert {"slow 200", 0} = Task.await(client, 10_000)
    end)
  end

  defp curl(args), do: System.cmd("curl", ["-sS" | args], stderr_to_stdout: true)
end
