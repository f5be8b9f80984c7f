defmodule H2Flow.Test do
  @moduledoc """
  Helpers for an application's ExUnit tests: a server for one test, on a free port, under the
  test's supervisor (stopped when the test ends), and an `H2Flow.Client` connected to it.

      defmodule MyApp.HelloTest do
        use ExUnit.Case, async: true

        test "the handler counts the body" do
          client = H2Flow.Test.client!(handler: MyApp.Hello)
          {:ok, response} = H2Flow.Client.request(client, "POST", "/", [], "hello")
          assert %{status: 200, body: "got 5"} = response
        end
      end

  A Plug is tested the same way, with `plug: MyApp.Router` (or `{MyApp.Router, opts}`)
  instead of `handler:`. `transport: :tls` runs the server over TLS with a throwaway
  certificate (`H2Flow.TLS.self_signed/1`) that the client is told to trust. The functions
  must be called from the test process (they use `ExUnit.Callbacks.start_supervised!/1`).
  """

  @doc """
  Starts a server with `opts` (those of `H2Flow.start_link/1`; `port: 0` and
  `ip: {127, 0, 0, 1}` unless given) for the current test, and a client connected to it with
  `client_opts` (those of `H2Flow.Client.connect/2`). Returns the client.
  """
  @spec client!(keyword(), keyword()) :: H2Flow.Client.t()
  def client!(opts, client_opts \\ []) do
    {tls, opts} = tls(opts)
    server = start_server!(opts)
    connect!(server, Keyword.merge(tls, client_opts))
  end

  @doc "Starts a server for the current test (see `client!/2` for `opts`); returns it."
  @spec server!(keyword()) :: H2Flow.server()
  def server!(opts) do
    {_tls, opts} = tls(opts)
    start_server!(opts)
  end

  @doc """
  Connects a client to a server started by `server!/1` or `H2Flow.start_link/1`, for the
  current test. A server over TLS with the certificate `server!/1` made is trusted.
  """
  @spec connect!(H2Flow.server(), keyword()) :: H2Flow.Client.t()
  def connect!(server, client_opts \\ []) do
    config = server_config(server)
    cacerts = if config.transport == :tls, do: config.tls[:cacerts]

    client_opts =
      if cacerts, do: Keyword.put_new(client_opts, :cacerts, cacerts), else: client_opts

    spec = {H2Flow.Client, [url: url(server)] ++ client_opts}
    ExUnit.Callbacks.start_supervised!(Supervisor.child_spec(spec, id: make_ref()))
  end

  @doc """
  The URL of a server: `http://127.0.0.1:port` (the address it listens on), or over TLS
  `https://localhost:port` (the name `server!/1`'s certificate is for).
  """
  @spec url(H2Flow.server()) :: String.t()
  def url(server) do
    {ip, port} = H2Flow.address(server)

    case server_config(server).transport do
      :tls ->
        "https://localhost:#{port}"

      :tcp ->
        host = if ip == {0, 0, 0, 0}, do: "127.0.0.1", else: to_string(:inet.ntoa(ip))
        "http://#{host}:#{port}"
    end
  end

  defp server_config(server) do
    server |> H2Flow.Server.child(H2Flow.Server.Listener) |> GenServer.call(:config)
  end

  defp start_server!(opts) do
    opts = Keyword.merge([port: 0, ip: {127, 0, 0, 1}], opts)
    ExUnit.Callbacks.start_supervised!(Supervisor.child_spec({H2Flow, opts}, id: make_ref()))
  end

  # `transport: :tls` without `:tls` options: a throwaway certificate for localhost.
  defp tls(opts) do
    if opts[:transport] == :tls and !Keyword.has_key?(opts, :tls) do
      tls = H2Flow.TLS.self_signed(["localhost"])
      {[cacerts: tls[:cacerts]], Keyword.put(opts, :tls, tls)}
    else
      {[], opts}
    end
  end
end
