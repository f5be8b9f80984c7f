defmodule H2Flow.TestBounds do
  @moduledoc false
  # Bounds that tests assert, computed from the defaults they follow from (never written out
  # as numbers that would go stale when a default changes).

  @doc """
  Request-body bytes an HTTP/1.1 connection holds at most with default options: the engine's
  `:max_body_buffer`, beyond which the socket is not read, plus the reads already in the
  connection's mailbox when it stopped reading ({active, N} reads of `:read_buffer` bytes).
  """
  def http1_held do
    H2Flow.HTTP1.Engine.validate!([]).max_body_buffer +
      H2Flow.Connection.Handshake.active_n() * H2Flow.Config.defaults()[:read_buffer]
  end
end
